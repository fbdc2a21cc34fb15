"""The provider-fault rule: a booked GPU offline past the grace fails its booking.

The rule is in docs/miner-protocol.md (Provider faults).

A GPU is offline (status.py) while any of these holds, and each has held since a known moment:
- its miner's last heartbeat is stale: since `last_heartbeat_at + offline_after_s`;
- its miner deregistered: since `deregistered_at`;
- its agent reports it unhealthy or lost: since `Gpu.unhealthy_since` (set by the heartbeat).
Each condition, once true, stays true until it clears, so the GPU has been offline without a
break since the earliest start among the conditions that hold now. Time before the booking
started, and time before this sweeper first ran, does not count: a coordinator that was itself
down for longer than the grace (so no heartbeat could land) must not fail every booking when it
comes back; agents get a full grace to heartbeat again.

The booking ends `failed` through `bookings.end_booking` (100 % of the unused time refunded).
Offline-ness is judged again inside the write transaction, so a heartbeat that lands between
the scan and the write wins over the fault.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import ACTIVE, Booking, Gpu, Miner
from coordinator_stub.market import bookings
from coordinator_stub.market.status import UNHEALTHY, gpu_online

_FaultRow = Row[str, datetime, datetime | None, datetime | None, str, datetime | None]
_FaultSelect = Select[str, datetime, datetime | None, datetime | None, str, datetime | None]


def _booked_offline(now: datetime, settings: CoordinatorSettings) -> _FaultSelect:
    """Active, unexpired bookings whose GPU is offline now, with what offline-ness started from."""
    return (
        select(
            Booking.id,
            Booking.start_time,
            Miner.last_heartbeat_at,
            Miner.deregistered_at,
            Gpu.health,
            Gpu.unhealthy_since,
        )
        .join(Gpu, Gpu.id == Booking.gpu_id)
        .join(Miner, Miner.id == Gpu.miner_id)
        .where(
            Booking.status == ACTIVE,
            Booking.end_time > now,
            ~gpu_online(now, settings.offline_after_s),
        )
    )


def offline_since(
    row: _FaultRow, *, now: datetime, offline_after_s: float, watching_since: datetime
) -> datetime | None:
    """When the GPU of this booking went offline (for this unbroken stretch); None if online."""
    booking_start, last_heartbeat_at, deregistered_at = row[1], row[2], row[3]
    health, unhealthy_since = row[4], row[5]
    starts: list[datetime] = []
    stale_after = timedelta(seconds=offline_after_s)
    if last_heartbeat_at is None:
        starts.append(booking_start)
    elif last_heartbeat_at < now - stale_after:
        starts.append(last_heartbeat_at + stale_after)
    if deregistered_at is not None:
        starts.append(deregistered_at)
    if health in UNHEALTHY:
        starts.append(unhealthy_since or watching_since)
    if not starts:
        return None
    return max(min(starts), booking_start, watching_since)


class ProviderFaultSweep:
    """The sweep task (`miners.sweeper.sweep_tasks`); remembers when this process began watching."""

    def __init__(self) -> None:
        self.watching_since: datetime | None = None

    def __call__(self, db: Database, settings: CoordinatorSettings, now: datetime) -> int:
        if self.watching_since is None:
            self.watching_since = now
        grace = timedelta(seconds=settings.lease_fault_grace_s)
        with db.read() as session:
            rows = session.execute(_booked_offline(now, settings)).all()
        failed = 0
        for row in rows:
            if not self._is_fault(row, now, settings, grace):
                continue
            with db.write() as session:
                if self._fail_if_still_faulted(session, row[0], now, settings, grace):
                    failed += 1
        return failed

    def _is_fault(
        self, row: _FaultRow, now: datetime, settings: CoordinatorSettings, grace: timedelta
    ) -> bool:
        assert self.watching_since is not None
        since = offline_since(
            row,
            now=now,
            offline_after_s=settings.offline_after_s,
            watching_since=self.watching_since,
        )
        return since is not None and now - since > grace

    def _fail_if_still_faulted(
        self,
        session: Session,
        booking_id: str,
        now: datetime,
        settings: CoordinatorSettings,
        grace: timedelta,
    ) -> bool:
        row = session.execute(
            _booked_offline(now, settings).where(Booking.id == booking_id)
        ).one_or_none()
        if row is None or not self._is_fault(row, now, settings, grace):
            return False
        ended = bookings.end_booking(
            session, booking_id, outcome="failed", now=now, settings=settings
        )
        if ended is None:
            return False
        events.emit_on_commit(
            session,
            "booking_failed_provider_fault",
            level="warning",
            booking_id=booking_id,
            gpu_id=ended.gpu_id,
            miner_id=ended.miner_id,
            refund=ended.refund,
        )
        return True
