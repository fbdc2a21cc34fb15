"""The lease long poll: keeps `GET /v1/miners/leases` open and hands each answer to the worker.

`since` is the newest lease version the worker applied; without one (first poll, or after a
re-registration) the poll asks with `wait_s=0` so the current set arrives at once. Failures
back off with jitter (`RetrySchedule`: seconds while the coordinator is down, minutes while it
refuses us, its Retry-After on a 429); the first failure of a streak, and of each refusal status,
is logged, and so is the recovery. The coordinator answers at once whenever `since` differs
from its version, so an answer that made no progress (dropped, or the same `since` again) is
followed by a backoff too: never a tight loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError
from agent.lease.worker import LeaseWorker
from agent.link.backoff import Backoff, RetrySchedule, is_refusal
from agent.link.client import CoordinatorClient
from agent.log import get_logger

log = get_logger("agent.lease_poll")

LONG_POLL_WAIT_S = 25.0
MIN_WAITED_S = 1.0  # an answer slower than this was held by the coordinator, not instant
STOP_CHECK_S = 0.5  # a long wait (a refusal: minutes) still notices `stop` this often


class LeasePoller:
    """Runs on its own daemon thread until `stop` is set."""

    def __init__(
        self,
        *,
        worker: LeaseWorker,
        client: Callable[[], CoordinatorClient | None],
        registered: threading.Event,
        stop: threading.Event,
        backoff: Backoff,
    ) -> None:
        self._worker = worker
        self._client = client
        self._registered = registered
        self._stop = stop
        self.backoff = backoff
        self._schedule = RetrySchedule(backoff)
        self._kick = threading.Event()
        self._failing = False

    def run(self) -> None:
        """Poll until stopped; never raises on coordinator trouble."""
        while not self._stop.is_set():
            if not self._registered.wait(0.5):
                continue
            client = self._client()
            if client is None:
                continue
            since = self._worker.lease_version
            wait_s = 0.0 if since is None else LONG_POLL_WAIT_S
            asked_at = time.monotonic()
            failure: CoordinatorUnavailableError | CoordinatorRejectedError | None = None
            try:
                answer = client.leases(since=since, wait_s=wait_s)
            except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
                failure = exc
            if self._stop.is_set():
                return
            if failure is None:
                if self._failing:
                    log.info("lease_poll_recovered")
                self._failing = False
                accepted = self._worker.offer(answer.lease_version, answer.leases, since=since)
                waited = time.monotonic() - asked_at >= min(wait_s, MIN_WAITED_S)
                if accepted and (waited or self._worker.lease_version != since):
                    self._schedule.success()
                    continue
                # No progress: the coordinator answered at once and the next poll would ask with
                # the same `since` (or its answer was dropped), so it would answer at once again.
                # Never poll again without a wait or a backoff.
                delay = self.backoff.failure()
                log.debug("lease_poll_no_progress", since=since, retry_in_s=round(delay, 2))
                self._pause(delay)
                continue
            retry = self._schedule.failure(failure)
            if retry.first:  # once per outage, and once per refusal status, until a success
                level = log.error if is_refusal(failure) else log.warning
                level("lease_poll_failed", error=str(failure), retry_in_s=round(retry.delay_s, 2))
            self._failing = True
            self._pause(retry.delay_s)

    def retry_now(self) -> None:
        """Cut a wait short (after a reload: the new key or coordinator deserves a try now)."""
        self._schedule.success()
        self._kick.set()

    def _pause(self, delay_s: float) -> None:
        """Wait `delay_s`, or less when stopped or kicked by `retry_now`."""
        deadline = time.monotonic() + delay_s
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._kick.wait(min(left, STOP_CHECK_S)):
                break
        self._kick.clear()
