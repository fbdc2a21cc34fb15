"""A GPU's status (`available | booked | offline`), derived when read, as one SQL expression.

This is the only place the rule of SPEC §3.1 lives; list, details, book, offers and pricing all
select through `select_gpus()` so they can never disagree:

- offline: the miner never heartbeated, or its last heartbeat is older than `offline_after_s`,
  or it deregistered, or the agent reports the GPU `unhealthy`/`lost`;
- booked: it has an `active` booking whose `end_time` is still in the future;
- available: otherwise.

A booking past its `end_time` reads as over at once, before the sweeper has settled it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, case, select
from sqlalchemy.orm import aliased

from coordinator_stub.models import ACTIVE, Booking, Gpu, Miner

ActiveBooking = aliased(Booking, name="active_booking")

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


def gpu_status(now: datetime, offline_after_s: float) -> ColumnElement[str]:
    """The status CASE over Gpu, Miner and the outer-joined ActiveBooking."""
    return case(
        (~gpu_online(now, offline_after_s), "offline"),
        (and_(ActiveBooking.id.is_not(None), ActiveBooking.end_time > now), "booked"),
        else_="available",
    ).label("status")


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
