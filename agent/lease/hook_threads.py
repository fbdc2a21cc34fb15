"""Hook threads for the lease worker: each lease's hooks beside the others', one at a time each.

A slow `on_start` (an image pull can take minutes; `hook_timeout_s` may be a day) must not hold
back another lease's start, its end at `end_time` or any ack. So the lease worker records a
transition (`starting` / `stopping`) in the state file on its own thread, then hands the hook to
a thread of that lease's own, which records the outcome (`started` / `stopped`) and wakes the
worker to send the ack. Who does what:

- the worker thread alone plans, records `starting` / `stopping`, starts hook threads and sends
  acks; a hook thread only runs its hook and records how it ended;
- a lease has at most one hook thread at a time. A stop planned while that lease's `on_start`
  runs (a release, or `end_time` passing) waits here (`defer`) and is handed back to the worker
  (`take_ready`) once the thread ended: `on_end` never runs before `on_start` finished, nor twice
  (the worker records `stopping` before it, and a lease no longer active is never stopped again);
- every method is called with the worker's lock held (it guards `_running` and `_deferred` along
  with the state), except `wait`, which must not hold it while joining.

Hook threads are daemon threads, as the worker thread is: a SIGTERM stop does not wait for a
hook (the agent exits within 5 s and the hook, in its own session, runs on or dies with the
service's control group). The state file then says `starting` / `stopping`, so a restart resumes
the lease without running that hook again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent.lease.reconcile import Stop
from agent.log import get_logger

log = get_logger("agent.leases")


class LeaseHookThreads:
    """The hook thread running for each lease, and the stops waiting for one to end."""

    def __init__(self, lock: threading.RLock, *, on_done: Callable[[], None]) -> None:
        self._lock = lock
        self._on_done = on_done  # wakes the worker: an ack is owed, a deferred stop may run
        self._running: dict[str, threading.Thread] = {}  # booking id → its hook thread
        self._deferred: dict[str, Stop] = {}  # booking id → the stop waiting for that thread

    def busy(self, booking_id: str) -> bool:
        """True while a hook thread runs for this lease (caller holds the lock)."""
        return booking_id in self._running

    def spawn(self, booking_id: str, target: Callable[[], None]) -> None:
        """Run `target` (a hook and its outcome) on a new thread for this lease (lock held)."""
        assert booking_id not in self._running, f"{booking_id} already has a hook running"
        thread = threading.Thread(
            target=self._run,
            args=(booking_id, target),
            name=f"lease-hook-{booking_id}",
            daemon=True,
        )
        self._running[booking_id] = thread
        thread.start()

    def defer(self, stop: Stop) -> bool:
        """Keep `stop` until this lease's hook thread ends (lock held); True when it is new.

        Of two stops the one at the newer generation wins (its ack is the one not stale).
        """
        held = self._deferred.get(stop.booking_id)
        if held is not None and held.generation >= stop.generation:
            return False
        self._deferred[stop.booking_id] = stop
        return held is None

    def take_ready(self) -> list[Stop]:
        """The deferred stops whose lease has no hook thread any more (lock held)."""
        ready = [
            stop for booking_id, stop in self._deferred.items() if booking_id not in self._running
        ]
        for stop in ready:
            del self._deferred[stop.booking_id]
        return ready

    def wait(self, timeout_s: float | None = None) -> bool:
        """Join the hook threads running now (lock NOT held); True when there were any."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout_s)
        return bool(threads)

    def _run(self, booking_id: str, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:  # a hook thread's guard: the lease stays as recorded, others go on
            log.exception("lease_hook_thread_failed", booking_id=booking_id)
        finally:
            with self._lock:
                self._running.pop(booking_id, None)
            self._on_done()
