"""A fixed-bucket histogram the lease worker fills and the metrics endpoint reads.

Kept apart from `prometheus_client` so the layers below `agent.service` count without
depending on the exporter; `agent.service.metrics` turns a `HistogramSnapshot` into the
exposition. Not thread-safe on its own: callers hold the lock that guards what they count.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

# Lease hooks start containers, mount disks, pull images: from tens of ms to minutes.
HOOK_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative counts per upper bound (the last is +Inf), with the sum of all values."""

    buckets: tuple[tuple[float, int], ...]
    total: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1] if self.buckets else 0


class Histogram:
    """Counts observations per bucket (`le` bounds, Prometheus style)."""

    def __init__(self, bounds: tuple[float, ...] = HOOK_BUCKETS_S) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last slot: above every bound
        self._total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._total += value

    def snapshot(self) -> HistogramSnapshot:
        running = 0
        buckets = []
        for bound, n in zip((*self._bounds, math.inf), self._counts, strict=True):
            running += n
            buckets.append((bound, running))
        return HistogramSnapshot(tuple(buckets), self._total)
