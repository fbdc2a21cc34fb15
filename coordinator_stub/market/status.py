"""A GPU's status (`available | booked | offline`), derived when read, as one SQL expression.

This is the only place the rule of docs/api.md lives; list, details, book, offers and pricing all
select through `select_gpus()` so they can never disagree:

- offline: the miner never heartbeated, or its last heartbeat is older than `offline_after_s`,
  or it deregistered, or the agent reports the GPU `unhealthy`/`lost`;
- booked: it has an `active` booking whose `end_time` is still in the future;
- available: otherwise.

A booking past its `end_time` reads as over at once, before the sweeper has settled it.

The rule is written twice here, side by side: `gpu_status()`, the CASE that names a row's status,
and `status_condition()`, the same rule as a boolean for filtering, which a planner can estimate
(a test checks the two agree for every status on SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, select
from sqlalchemy.orm import aliased

from coordinator_stub.db.models import ACTIVE, Booking, Gpu, Miner

ActiveBooking = aliased(Booking, name="active_booking")
LiveBooking = aliased(Booking, name="live_booking")  # for has_live_booking's subquery

UNHEALTHY = ("unhealthy", "lost")


def miner_online(now: datetime, offline_after_s: float) -> ColumnElement[bool]:
    cutoff = now - timedelta(seconds=offline_after_s)
    return and_(
        Miner.last_heartbeat_at.is_not(None),
        Miner.last_heartbeat_at >= cutoff,
        Miner.deregistered_at.is_(None),
    )


def gpu_online(now: datetime, offline_after_s: float) -> ColumnElement[bool]:
    return and_(miner_online(now, offline_after_s), Gpu.health.not_in(UNHEALTHY))


def booking_live(now: datetime) -> ColumnElement[bool]:
    """The outer-joined ActiveBooking exists and has not reached its `end_time`."""
    return and_(ActiveBooking.id.is_not(None), ActiveBooking.end_time > now)


def gpu_status(now: datetime, offline_after_s: float) -> ColumnElement[str]:
    """The status CASE over Gpu, Miner and the outer-joined ActiveBooking."""
    return case(
        (~gpu_online(now, offline_after_s), "offline"),
        (booking_live(now), "booked"),
        else_="available",
    ).label("status")


def has_live_booking(now: datetime) -> ColumnElement[bool]:
    """`booking_live` as a correlated EXISTS, which needs no outer join.

    The same truth value: the outer join matches the GPU's one `active` booking (the unique
    partial index `uq_booking_active_gpu` allows no second), and this asks whether that booking
    exists with its `end_time` still ahead.
    """
    return exists().where(
        LiveBooking.gpu_id == Gpu.id,
        LiveBooking.status == ACTIVE,
        LiveBooking.end_time > now,
    )


def status_condition(status: str, now: datetime, offline_after_s: float) -> ColumnElement[bool]:
    """`gpu_status(...) == status` stated as the equivalent boolean, for WHERE clauses.

    It selects the same rows as comparing the CASE (tests/coordinator/test_gpu_status.py checks
    every status on both databases), but a planner can estimate it. PostgreSQL takes a CASE
    comparison for 0.5 % of the rows, and `active_booking.id IS NULL` on the outer join for
    almost none, so for either it sorts the whole table instead of walking `ix_gpus_price_id`
    in order and stopping at the LIMIT; an anti-join on `uq_booking_active_gpu` it estimates
    well. Every term is NOT NULL (`health` is NOT NULL; the timestamps are tested for NULL
    first), so the negations are exact. An unknown status matches nothing, as the CASE would.
    """
    online = gpu_online(now, offline_after_s)
    if status == "offline":
        return ~online
    if status == "booked":
        return and_(online, has_live_booking(now))
    if status == "available":
        return and_(online, ~has_live_booking(now))
    return false()


def select_gpus(now: datetime, offline_after_s: float) -> Select[Gpu, Booking, str]:
    """Live (not deleted) GPUs with their active booking (or None) and derived status."""
    return (
        select(Gpu, ActiveBooking, gpu_status(now, offline_after_s))
        .join(Miner, Miner.id == Gpu.miner_id)
        .outerjoin(
            ActiveBooking,
            and_(ActiveBooking.gpu_id == Gpu.id, ActiveBooking.status == ACTIVE),
        )
        .where(Gpu.deleted_at.is_(None))
    )
