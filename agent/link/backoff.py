"""Exponential backoff with jitter, so a coordinator outage never turns into a tight loop.

`Backoff` is the bare schedule; `RetrySchedule` picks one by what went wrong: an outage is
retried within seconds, a refusal (401, 403, ...) within minutes, a 429 when the coordinator
says (Retry-After).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError


class Backoff:
    """Delays that double from `initial_s` up to `cap_s`, each drawn from [½·d, d] ("equal jitter").

    `failure()` returns the next delay; `success()` starts over.
    """

    def __init__(
        self, initial_s: float, cap_s: float, *, rng: Callable[[], float] = random.random
    ) -> None:
        if initial_s <= 0 or cap_s < initial_s:
            raise ValueError("need 0 < initial_s <= cap_s")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.failures = 0
        self._rng = rng

    def failure(self) -> float:
        """Count a failure; returns how long to wait before the next try."""
        ceiling = min(self.cap_s, self.initial_s * 2 ** min(self.failures, 30))
        self.failures += 1
        return float(ceiling * (0.5 + 0.5 * self._rng()))

    def success(self) -> None:
        """Reset after a success."""
        self.failures = 0


REFUSED_INITIAL_S = 60.0  # a refusal (wrong or revoked key, ...) is retried after a minute ...
REFUSED_CAP_S = 600.0  # ... growing to ten: an operator has to act, hammering will not help
RETRY_AFTER_CAP_S = 600.0  # a 429's Retry-After is honoured, up to this
_NOT_REFUSALS = frozenset({404, 409, 429})  # register again / a race / throttled


def is_refusal(exc: BaseException) -> bool:
    """A 4xx that retrying soon will not change (404 and 409 are handled by their callers,
    docs/miner-protocol.md); 429 is throttling, retried when the coordinator says."""
    return isinstance(exc, CoordinatorRejectedError) and exc.status_code not in _NOT_REFUSALS


@dataclass(frozen=True, slots=True)
class Retry:
    """What to do after one failed call: wait `delay_s`; `first` when this kind of failure
    (an outage, or a refusal with this status) is new since the last success — log it then."""

    delay_s: float
    first: bool


class RetrySchedule:
    """How long to wait after a coordinator failure, by kind.

    - unreachable, timeout, 5xx, and 404/409 (handled by the caller): `outage` — seconds;
    - refused (any other 4xx but 429: a wrong or revoked key, a request it will never take):
      `refused` — a minute, growing to ten; a new key (SIGHUP) resets it via `success()`;
    - 429: the coordinator's Retry-After (capped), else the outage backoff.
    """

    def __init__(self, outage: Backoff, refused: Backoff | None = None) -> None:
        self.outage = outage
        self.refused = refused or Backoff(REFUSED_INITIAL_S, REFUSED_CAP_S)
        self._seen: set[int | None] = set()  # statuses (None: outage) since the last success

    def failure(self, exc: CoordinatorUnavailableError | CoordinatorRejectedError) -> Retry:
        """Count a failure; returns the wait and whether it is the first of its kind."""
        status = exc.status_code if isinstance(exc, CoordinatorRejectedError) else None
        first = status not in self._seen
        self._seen.add(status)
        if is_refusal(exc):
            return Retry(self.refused.failure(), first)
        delay = self.outage.failure()
        if isinstance(exc, CoordinatorRejectedError) and exc.retry_after_s is not None:
            delay = max(delay, min(exc.retry_after_s, RETRY_AFTER_CAP_S))
        return Retry(delay, first)

    def success(self) -> None:
        """Start over: the coordinator answered (or the operator changed the config)."""
        self.outage.success()
        self.refused.success()
        self._seen.clear()
