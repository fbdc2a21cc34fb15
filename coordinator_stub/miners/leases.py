"""Desired leases of a miner, lease versions and lease acks (docs/miner-protocol.md).

Who calls what: every code path that changes a miner's desired lease set (book, release, expiry,
forced delete, fault, rejection) calls `market.lease_signal.lease_set_changed()` inside its own
transaction, so the version bump commits — or rolls back — with the change itself. The same call
queues the wake-up: `pg_notify` on PostgreSQL (delivered by the server at commit, to every
coordinator process), and a note in `session.info` that `miners.wakeups.LeaseHub` turns into an
in-process wake-up after the commit (on SQLite other processes see the change by polling
`lease_version`).

Generations: a booking's lease has exactly two desired states, `active` then `ended`, and
`bookings.end_booking` increments `lease_generation` by one when it ends a booking. A booking
still `active` in the database but past its `end_time` is already `ended` to its agent, so it is
shown with the generation it will have once settled (`lease_generation + 1`): the generation
changes exactly when the desired state does, never when the sweeper catches up, and never because
an agent restarted or reported anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import BindParameter, Connection, bindparam, select, union_all, update
from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db.models import ACTIVE, Booking, Gpu, Miner, UtcDateTime
from coordinator_stub.errors import ConflictError, NotFoundError
from coordinator_stub.market import bookings

# How long an ended lease that the agent has not acknowledged as stopped stays in the list.
ENDED_LEASE_HORIZON = timedelta(hours=24)
DONE_LEASE_STATES = ("stopped", "rejected")

LeaseAckState = Literal["started", "stopped", "rejected"]


def lease_version(session: Session, miner_id: str) -> int | None:
    """The miner's current lease version, or None when the miner is unknown."""
    return session.scalar(select(Miner.lease_version).where(Miner.id == miner_id))


@dataclass(frozen=True)
class DesiredLease:
    booking_id: str
    gpu_id: str
    gpu_uuid: str | None
    client_id: str
    start_time: datetime
    end_time: datetime
    generation: int
    state: Literal["active", "ended"]


def _lease_view(
    status: str, end_time: datetime, generation: int, now: datetime
) -> tuple[Literal["active", "ended"], int]:
    """(desired state, shown generation) of a booking at `now` (see the module docstring)."""
    if status != ACTIVE:
        return "ended", generation
    if end_time <= now:
        return "ended", generation + 1
    return "active", generation


_BOOKINGS = Booking.__table__.c
_GPUS = Gpu.__table__.c
_LEASE_COLUMNS = (
    _BOOKINGS.miner_id,
    _BOOKINGS.id,
    _BOOKINGS.gpu_id,
    _GPUS.uuid,
    _BOOKINGS.client_id,
    _BOOKINGS.start_time,
    _BOOKINGS.end_time,
    _BOOKINGS.lease_generation,
    _BOOKINGS.status,
    _BOOKINGS.ended_at,
)
_MINER_IDS: BindParameter[str] = bindparam("miner_ids", expanding=True)
_ACTIVE_LEASES = (
    select(*_LEASE_COLUMNS)
    .join_from(Booking.__table__, Gpu.__table__, _GPUS.id == _BOOKINGS.gpu_id)
    .where(
        _BOOKINGS.miner_id.in_(_MINER_IDS),
        _BOOKINGS.ended_at.is_(None),
        _BOOKINGS.status == ACTIVE,
    )
)
_ENDED_LEASES = (
    select(*_LEASE_COLUMNS)
    .join_from(Booking.__table__, Gpu.__table__, _GPUS.id == _BOOKINGS.gpu_id)
    .where(
        _BOOKINGS.miner_id.in_(_MINER_IDS),
        _BOOKINGS.ended_at >= bindparam("ended_after", type_=UtcDateTime),
        _BOOKINGS.status != ACTIVE,
        # Two comparisons, not not_in(): a literal tuple is an expanding parameter, which
        # SQLAlchemy renders anew on every execution of this hot statement.
        *(_BOOKINGS.lease_state != done for done in DONE_LEASE_STATES),
    )
)
_DESIRED_LEASES = union_all(_ACTIVE_LEASES, _ENDED_LEASES)


def desired_leases(session: Session, miner_id: str, now: datetime) -> list[DesiredLease]:
    """The leases the miner's agent should hold (`active`) or stop (`ended`), by start time."""
    return desired_leases_at(session.connection(), {miner_id: now}).get(miner_id, [])


def desired_leases_at(
    conn: Connection, nows: Mapping[str, datetime]
) -> dict[str, list[DesiredLease]]:
    """For each miner, its desired leases at its own `now` (a batch of heartbeats, one query).

    Every active booking on the miner's GPUs, plus bookings ended in the last 24 h whose lease
    the agent has not yet acknowledged as `stopped` or `rejected`: one statement of two index
    range scans on (miner_id, ended_at) per miner, so a miner's history does not slow its
    heartbeats. Core, not ORM: this runs on every heartbeat and long-poll answer.
    """
    if not nows:
        return {}
    rows = conn.execute(
        _DESIRED_LEASES,
        {"miner_ids": list(nows), "ended_after": min(nows.values()) - ENDED_LEASE_HORIZON},
    )
    by_miner: dict[str, list[DesiredLease]] = {miner_id: [] for miner_id in nows}
    for row in sorted(rows, key=lambda r: (r.start_time, r.id)):
        now = nows[row.miner_id]
        if row.ended_at is not None and row.ended_at < now - ENDED_LEASE_HORIZON:
            continue  # the query's horizon is the batch's earliest now; this miner's is later
        state, generation = _lease_view(row.status, row.end_time, row.lease_generation, now)
        by_miner[row.miner_id].append(
            DesiredLease(
                booking_id=row.id,
                gpu_id=row.gpu_id,
                gpu_uuid=row.uuid,
                client_id=row.client_id,
                start_time=row.start_time,
                end_time=row.end_time,
                generation=generation,
                state=state,
            )
        )
    return by_miner


@dataclass(frozen=True)
class AckResult:
    booking_id: str
    generation: int  # the lease's generation after the ack
    lease_state: str
    booking_status: str


def ack_lease(
    session: Session,
    *,
    miner_id: str,
    booking_id: str,
    generation: int,
    state: LeaseAckState,
    detail: str | None,
    now: datetime,
    settings: CoordinatorSettings,
) -> AckResult:
    """Record what the agent did with a lease; `rejected` of an active lease fails the booking.

    A generation other than the lease's current one is stale (409): the desired state moved on
    and the agent must act on the new one. `started`/`stopped` only record `lease_state`.
    Each write is a compare-and-set on the (status, generation) that was read, so an ack racing
    a release or the sweeper is judged against the state it actually lands on.
    """
    for _attempt in range(3):
        session.expire_all()
        booking = session.execute(
            select(Booking).where(Booking.id == booking_id, Booking.miner_id == miner_id)
        ).scalar_one_or_none()
        if booking is None:
            raise NotFoundError("lease not found")
        desired, current = _lease_view(
            booking.status, booking.end_time, booking.lease_generation, now
        )
        if generation != current:
            raise ConflictError(
                f"stale lease generation {generation}: the lease is now generation {current} "
                f"({desired})"
            )
        if booking.lease_state in DONE_LEASE_STATES and state != booking.lease_state:
            raise ConflictError(f"the lease was already {booking.lease_state}")
        if state == "rejected" and desired == "active":
            # The host cannot run it: the renter gets every unused second back.
            if (
                bookings.end_booking(
                    session, booking_id, outcome="failed", now=now, settings=settings
                )
                is None
            ):
                continue  # ended by someone else since we read it: judge the ack again
            session.expire_all()
            booking = session.get_one(Booking, booking_id)
        status, base_generation = booking.status, booking.lease_generation
        changed = session.execute(
            update(Booking)
            .where(
                Booking.id == booking_id,
                Booking.status == status,
                Booking.lease_generation == base_generation,
            )
            .values(lease_state=state, lease_detail=detail)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            return AckResult(
                booking_id=booking_id,
                generation=_lease_view(status, booking.end_time, base_generation, now)[1],
                lease_state=state,
                booking_status="completed"
                if status == ACTIVE and booking.end_time <= now
                else status,
            )
    raise ConflictError("the lease changed while it was acknowledged; read it again")
