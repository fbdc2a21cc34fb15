"""Orders (docs/api.md): bookings as the caller may see them — a client its own, a miner those on
its GPUs, an admin all. A booking past its end_time reads `completed` before it is settled."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import and_, or_, select

from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import ZERO, render
from coordinator_stub.db.models import ACTIVE, Booking, Gpu
from coordinator_stub.deps import DbDep, NowDep, PrincipalDep
from coordinator_stub.market.bookings import effective_status
from coordinator_stub.routes.inputs import Limit, Offset

router = APIRouter(tags=["marketplace_gpu"])

BookingStatus = Literal["active", "completed", "released", "cancelled_by_provider", "failed"]


class OrderOut(BaseModel):
    order_id: str
    booking_id: str
    gpu_id: str
    gpu_model: str
    miner_id: str
    client_id: str
    duration_hours: float
    price_per_hour: str
    total_cost: str
    refund: str | None
    status: BookingStatus
    lease_state: str
    created_at: str
    start_time: str
    end_time: str
    ended_at: str | None
    job_id: str | None


def order_object(booking: Booking, gpu_model: str, now: Any) -> dict[str, Any]:
    status = effective_status(booking, now)
    expired_unsettled = status != booking.status  # read as completed, not settled yet
    refund = ZERO if expired_unsettled else booking.refund
    ended_at = booking.end_time if expired_unsettled else booking.ended_at
    return {
        "order_id": booking.id,
        "booking_id": booking.id,
        "gpu_id": booking.gpu_id,
        "gpu_model": gpu_model,
        "miner_id": booking.miner_id,
        "client_id": booking.client_id,
        "duration_hours": booking.duration_hours,
        "price_per_hour": render(booking.price_per_hour),
        "total_cost": render(booking.total_cost),
        "refund": None if refund is None else render(refund),
        "status": status,
        "lease_state": booking.lease_state,
        "created_at": rfc3339(booking.created_at),
        "start_time": rfc3339(booking.start_time),
        "end_time": rfc3339(booking.end_time),
        "ended_at": rfc3339(ended_at),
        "job_id": booking.job_id,
    }


@router.get("/orders", response_model=list[OrderOut])
def list_orders(
    principal: PrincipalDep,
    db: DbDep,
    now: NowDep,
    status: BookingStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JSONResponse:
    """The caller's orders as a bare array, newest first."""
    query = select(Booking, Gpu.model).join(Gpu, Gpu.id == Booking.gpu_id)
    if principal.role == "client":
        query = query.where(Booking.client_id == principal.subject)
    elif principal.role == "miner":
        query = query.where(Booking.miner_id == principal.subject)
    if status == "active":
        query = query.where(Booking.status == ACTIVE, Booking.end_time > now)
    elif status == "completed":
        query = query.where(
            or_(
                Booking.status == "completed",
                and_(Booking.status == ACTIVE, Booking.end_time <= now),
            )
        )
    elif status is not None:
        query = query.where(Booking.status == status)
    query = query.order_by(Booking.created_at.desc(), Booking.id.desc()).limit(limit)
    with db.read() as session:
        rows = session.execute(query.offset(offset)).all()
        return JSONResponse([order_object(booking, model, now) for booking, model in rows])
