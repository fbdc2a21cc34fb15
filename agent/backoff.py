"""Exponential backoff with jitter, so a coordinator outage never turns into a tight loop."""

from __future__ import annotations

import random
from collections.abc import Callable


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
