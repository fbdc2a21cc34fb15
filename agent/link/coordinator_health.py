"""How the coordinator is doing as the heartbeat sees it: when to try again, and in what words.

Down (transport, 5xx): retried within seconds. Refused (401, 403, other 4xx but 404/409/429):
a minute growing to ten, logged once per status, and STATUS= says why, since only the operator
can fix it (a SIGHUP with a new key retries at once). 429: its Retry-After. `RetrySchedule`
(`agent.link.backoff`) picks the wait; this module holds the heartbeat's schedule, the deadline of
its next try and `state`, which STATUS= shows as "coordinator <state>". The long poll keeps its
own schedule (`agent.lease.poll`) over `poll_backoff`, whose cap follows the heartbeat interval
as the heartbeat's does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError
from agent.link.backoff import Backoff, RetrySchedule, is_refusal
from agent.log import get_logger

log = get_logger("agent.daemon")  # the daemon's events, under the name operators filter by

OK = "ok"


def backoff_cap_s(heartbeat_interval_s: float) -> float:
    """Longest wait between tries while the coordinator is down: two heartbeats, 2..15 s."""
    return min(15.0, max(2.0, 2 * heartbeat_interval_s))


def trouble_state(exc: CoordinatorUnavailableError | CoordinatorRejectedError) -> str:
    """`state` after a failure; STATUS= shows it as "coordinator <this>"."""
    if not isinstance(exc, CoordinatorRejectedError):
        return "unreachable"
    if exc.status_code in (401, 403):
        return f"rejects our key ({exc.status_code})"
    if exc.status_code == 429:
        return "throttling us (429)"
    return f"rejects our requests ({exc.status_code})"


class CoordinatorHealth:
    """The heartbeat's view of the coordinator. Written by the heartbeat job (and a reload);
    `state` is read by the status line, status.json and the metrics snapshot."""

    def __init__(self, heartbeat_interval_s: float) -> None:
        self.state = "not contacted yet"
        self.next_try_at = 0.0  # time.monotonic(): no heartbeat before it
        self.heartbeat_backoff = Backoff(0.5, backoff_cap_s(heartbeat_interval_s))
        self.poll_backoff = Backoff(0.5, backoff_cap_s(heartbeat_interval_s))
        self.retry = RetrySchedule(self.heartbeat_backoff)  # + minutes after a refusal (401, ...)

    @property
    def up(self) -> bool:
        """True when the last heartbeat went through."""
        return self.state == OK

    def waiting(self) -> bool:
        """True while a failure's backoff has not run out: the tick only samples then."""
        return time.monotonic() < self.next_try_at

    def set_interval(self, heartbeat_interval_s: float) -> None:
        """Size both backoffs' caps by a new heartbeat interval."""
        self.heartbeat_backoff.cap_s = self.poll_backoff.cap_s = backoff_cap_s(heartbeat_interval_s)

    def answered(self, on_recovered: Callable[[], None]) -> None:
        """A heartbeat went through; `on_recovered` runs (before `state` turns "ok") when it
        ends a spell of trouble, or is the first answer since start."""
        if self.state != OK:
            log.info("coordinator_reachable", previous=self.state)
            on_recovered()
        self.state = OK

    def reset(self) -> None:
        """Forget the backoff (a heartbeat went through, or a reload may have fixed what was
        wrong): the next tick tries at once."""
        self.retry.success()
        self.next_try_at = 0.0

    def failed(self, exc: CoordinatorUnavailableError | CoordinatorRejectedError) -> None:
        """A register or heartbeat call failed: wait before the next try, and say why."""
        retry = self.retry.failure(exc)
        self.next_try_at = time.monotonic() + retry.delay_s
        self.state = trouble_state(exc)
        if isinstance(exc, CoordinatorRejectedError):
            if retry.first:
                (log.error if is_refusal(exc) else log.warning)(
                    "coordinator_rejected",
                    error=str(exc),
                    status_code=exc.status_code,
                    retry_in_s=round(retry.delay_s, 2),
                )
            return
        (log.warning if retry.first else log.debug)(
            "coordinator_unreachable", error=str(exc), retry_in_s=round(retry.delay_s, 2)
        )
