"""Run blocking calls (NVML's) on a worker thread and wait for them with a deadline.

Standard library only. A ctypes call into a hung driver cannot be interrupted, so a job that
overruns keeps its thread; until it returns, new jobs on that worker fail at once instead of
piling more threads up behind the hung driver. Daemon threads never block interpreter exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineError(Exception):
    """A call did not return before its deadline (for NVML: the driver may be hung)."""


@dataclass(slots=True)
class Job:
    """One call handed to a worker, and what came of it."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    started_at: float | None = None


class DeadlineWorker:
    """One daemon thread that runs jobs one at a time; callers wait with a deadline.

    Not for concurrent callers: one owner submits and waits (the NVML backend holds a lock).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._current: Job | None = None
        self._lock = threading.Lock()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._current = job
            job.started_at = time.monotonic()
            try:
                job.result = job.fn()
            except BaseException as exc:  # noqa: BLE001  # handed back to the waiting caller
                job.error = exc
            finally:
                self._current = None
                job.done.set()

    def submit(self, fn: Callable[[], Any]) -> Job:
        """Queue `fn`; raises DeadlineError when an earlier job is still hung."""
        with self._lock:
            if self._current is not None or not self._jobs.empty():
                raise DeadlineError(f"{self._name}: an earlier call has not returned")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            job = Job(fn)
            self._jobs.put(job)
            return job

    @staticmethod
    def wait(job: Job, timeout_s: float) -> Any:
        """The job's result; its exception re-raised; DeadlineError past the deadline."""
        if not job.done.wait(max(timeout_s, 0.0)):
            raise DeadlineError(f"call still running after {timeout_s:.3g} s")
        if job.error is not None:
            raise job.error
        return job.result

    def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """Run `fn` on the worker thread and wait at most `timeout_s`."""
        result: T = self.wait(self.submit(fn), timeout_s)
        return result

    def stop(self) -> None:
        """Let the thread end after its current job (it is a daemon thread either way)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None
