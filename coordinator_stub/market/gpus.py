"""The GPU registry: register (idempotent by uuid) and delete (soft, so orders keep history).

The owner of a GPU is always the authenticated miner, never a body field (upstream took
`miner_id` from the body). A deleted GPU keeps its row with `deleted_at` set: its bookings and
reviews still point at it, and the same uuid may be registered again as a new GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coordinator_stub.auth import Principal
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.clock import new_id
from coordinator_stub.db.engine import insert_or_ignore
from coordinator_stub.db.models import ACTIVE, Booking, Gpu, Miner
from coordinator_stub.errors import ConflictError, ForbiddenError, NotFoundError
from coordinator_stub.ledger import transfers
from coordinator_stub.market.bookings import end_booking


def ensure_miner(session: Session, miner_id: str, now: datetime) -> None:
    """The miner's record (no heartbeat: its GPUs stay offline until its agent speaks)."""
    insert_or_ignore(
        session,
        Miner,
        {"id": miner_id, "registered_at": now, "capabilities": {}, "agent": {}},
        ["id"],
    )
    transfers.ensure_account(session, miner_id, now)


def _live_by_uuid(session: Session, miner_id: str, uuid: str) -> Gpu | None:
    return session.scalars(
        select(Gpu)
        .where(Gpu.miner_id == miner_id, Gpu.uuid == uuid, Gpu.deleted_at.is_(None))
        .execution_options(populate_existing=True)
    ).one_or_none()


def register_gpu(
    session: Session, *, miner_id: str, spec: Mapping[str, Any], now: datetime
) -> tuple[Gpu, bool]:
    """Create the GPU, or update the miner's live GPU with the same uuid. Returns (gpu, created).

    `spec` holds Gpu column values (model, memory_gb, price_per_hour, uuid, ...).
    """
    ensure_miner(session, miner_id, now)
    uuid = spec.get("uuid")
    if uuid is not None:
        existing = _live_by_uuid(session, miner_id, uuid)
        if existing is not None:
            return _update(session, existing, spec, now), False
    gpu = Gpu(
        id=new_id("gpu_"),
        miner_id=miner_id,
        created_at=now,
        updated_at=now,
        rating_sum=0,
        total_reviews=0,
        health="ok",
        **spec,
    )
    try:
        with session.begin_nested():
            session.add(gpu)
            session.flush()
    except IntegrityError:
        # uq_gpu_miner_uuid: the same card registered concurrently; update that one instead.
        existing = _live_by_uuid(session, miner_id, uuid) if uuid is not None else None
        if existing is None:
            raise
        return _update(session, existing, spec, now), False
    return gpu, True


def _update(session: Session, gpu: Gpu, spec: Mapping[str, Any], now: datetime) -> Gpu:
    session.execute(
        update(Gpu)
        .where(Gpu.id == gpu.id)
        .values(**spec, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(gpu)
    return gpu


def delete_gpu(
    session: Session,
    *,
    gpu_id: str,
    principal: Principal,
    force: bool,
    now: datetime,
    settings: CoordinatorSettings,
) -> Booking | None:
    """Soft-delete the GPU (its owner miner or an admin). A live booking makes it a 409 unless
    `force`, which ends the booking `cancelled_by_provider`. Returns that booking, if any."""
    gpu = session.scalars(select(Gpu).where(Gpu.id == gpu_id, Gpu.deleted_at.is_(None))).first()
    if gpu is None:
        raise NotFoundError(f"GPU {gpu_id} not found")
    if not principal.is_admin and principal.subject != gpu.miner_id:
        raise ForbiddenError("only the GPU's miner or an admin may delete it")
    # Mark it deleted first: the row lock makes a concurrent book (which holds FOR SHARE on the
    # row) finish before we look for its booking, and any later book sees the GPU gone.
    marked = session.execute(
        update(Gpu)
        .where(Gpu.id == gpu_id, Gpu.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFoundError(f"GPU {gpu_id} not found")
    active = session.scalars(
        select(Booking)
        .where(Booking.gpu_id == gpu_id, Booking.status == ACTIVE)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if active is None:
        return None
    if active.end_time <= now:
        end_booking(session, active.id, outcome="completed", now=now, settings=settings)
        return None
    if not force:
        raise ConflictError(f"GPU {gpu_id} is currently booked; use force=true to delete anyway")
    return end_booking(
        session, active.id, outcome="cancelled_by_provider", now=now, settings=settings
    )
