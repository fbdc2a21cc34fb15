"""The lease worker's inbox: desired lease sets, ordered by the coordinator's lease version.

Lease sets arrive from two threads (the long poll and the heartbeat job) and may cross on the
way: only the newest is kept, and an answer older than the version held is dropped — unless the
coordinator's version went backwards (see `offer`). The worker takes what is pending at each step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agent.link.wire import DesiredLease
from agent.log import get_logger

log = get_logger("agent.leases")


@dataclass(slots=True)
class _Offer:
    version: int | None
    leases: list[DesiredLease]


class LeaseInbox:
    """The newest lease set not yet applied, and the newest lease version seen (under `lock`)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.version: int | None = None
        self._pending: _Offer | None = None

    def offer(
        self, version: int | None, leases: list[DesiredLease], *, since: int | None = None
    ) -> bool:
        """Keep a desired lease set for the worker's next step; False when it is dropped.

        `since` is the version this worker held when the answer was asked for (the long poll's
        `since`). An answer older than the version held is normally a stale answer that raced a
        newer one (a heartbeat and the long poll cross) and is dropped. But an answer older than
        `since` cannot be a race: the coordinator's lease version went backwards after we learnt
        the newer one (its database was restored, or a failover kept the miner row but not the
        lease history). Its lease set is then the truth: adopt it and its version, as after a
        re-registration, or the long poll (answered at once while `since` differs) and every
        heartbeat would be ignored until the version caught up.
        """
        with self._lock:
            held = self.version
            if version is not None and held is not None and version < held:
                if since is None or version >= since:
                    return False  # a stale answer that crossed a newer one
                if held != since:
                    # A heartbeat moved the version while this answer was on its way: which of
                    # the two came after the reset is unknown. Ask afresh rather than guess.
                    self.version = None
                    log.warning("lease_version_went_back", held=held, coordinator=version)
                    return False
                log.warning(
                    "lease_version_reset", held=held, coordinator=version, leases=len(leases)
                )
            if version is not None:
                self.version = version
            self._pending = _Offer(version, leases)
        return True

    def reset_version(self) -> None:
        """Forget the lease version (after re-registering: the coordinator may have restarted)."""
        with self._lock:
            self.version = None

    def take(self) -> _Offer | None:
        """The pending lease set, if any, now owned by the caller (who holds the lock)."""
        offer, self._pending = self._pending, None
        return offer
