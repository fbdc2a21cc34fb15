"""The GPU marketplace (docs/api.md): register, list, details, delete, book, release, confirm.

Handlers are thin: validate, open one transaction, call the domain function (gpus.py,
bookings.py), render. Reviews and orders live in their own modules and are mounted here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from coordinator_stub.core import events
from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import ZERO, MoneyIn, MoneyOut
from coordinator_stub.db.models import Gpu
from coordinator_stub.deps import ClientDep, DbDep, MinerDep, NowDep, PrincipalDep, SettingsDep
from coordinator_stub.errors import NotFoundError
from coordinator_stub.market import bookings, gpus
from coordinator_stub.market.gpu_view import (
    GpuDetailsOut,
    GpuOut,
    gpu_details_object,
    gpu_object,
    gpu_rows,
)
from coordinator_stub.market.search import GpuFilters, search_gpus
from coordinator_stub.routes import gpu_reviews, orders
from coordinator_stub.routes.inputs import (
    Capability,
    Limit,
    LongText,
    Name,
    Offset,
    Region,
    Text,
    check_gpu_id,
)

router = APIRouter(prefix="/v1/marketplace", tags=["marketplace_gpu"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown GPU"}}


# ---- register ------------------------------------------------------------------------------


class GpuSpecIn(BaseModel):
    """The `gpu` object of a registration (unknown keys, e.g. a body `miner_id`, are ignored)."""

    name: Name
    memory_gb: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    price_per_hour: MoneyIn
    compute_capability: Annotated[Text, Field(max_length=16)] | None = None
    cuda_version: Annotated[Text, Field(max_length=32)] | None = None
    uuid: Annotated[Text, Field(min_length=1, max_length=128)] | None = None
    memory_mib: int | None = Field(default=None, ge=0, le=1_000_000_000)
    driver_version: Annotated[Text, Field(max_length=64)] | None = None
    region: Region | None = None
    capabilities: list[Capability] = Field(default_factory=list, max_length=64)
    cuda_cores: int | None = Field(default=None, ge=0, le=1_000_000_000)
    description: LongText | None = None

    @field_validator("price_per_hour")
    @classmethod
    def _positive_price(cls, value: MoneyIn) -> MoneyIn:
        if value <= 0:
            raise ValueError("price_per_hour must be greater than 0")
        return value

    @model_validator(mode="after")
    def _some_memory(self) -> GpuSpecIn:
        if self.memory_gb is None and self.memory_mib is None:
            raise ValueError("memory_gb (or memory_mib) is required")
        return self

    def columns(self) -> dict[str, Any]:
        memory_gb = (
            round(self.memory_gb)
            if self.memory_gb is not None
            else round((self.memory_mib or 0) / 1024)
        )
        return {
            "model": self.name,
            "memory_gb": memory_gb,
            "memory_mib": self.memory_mib,
            "price_per_hour": self.price_per_hour,
            "compute_capability": self.compute_capability,
            "cuda_version": self.cuda_version,
            "uuid": self.uuid,
            "driver_version": self.driver_version,
            "region": self.region,
            "capabilities": list(self.capabilities),
            "cuda_cores": self.cuda_cores,
            "description": self.description,
        }


class RegisterIn(BaseModel):
    gpu: GpuSpecIn


class RegisterOut(BaseModel):
    gpu_id: str
    status: Literal["registered"] = "registered"
    message: str
    price_per_hour: MoneyOut
    created: bool


@router.post(
    "/gpu/register",
    status_code=201,
    responses={200: {"model": RegisterOut, "description": "already known (same uuid)"}},
)
def register_gpu(
    body: RegisterIn, miner: MinerDep, db: DbDep, now: NowDep, response: Response
) -> RegisterOut:
    """Register a GPU for the calling miner: 201 when new, 200 when its uuid is already known."""
    with db.write() as session:
        gpu, created = gpus.register_gpu(
            session, miner_id=miner.subject, spec=body.gpu.columns(), now=now
        )
        events.emit_on_commit(
            session,
            "gpu_registered",
            gpu_id=gpu.id,
            miner_id=miner.subject,
            model=gpu.model,
            uuid=gpu.uuid,
            created=created,
        )
    response.status_code = 201 if created else 200
    verb = "registered" if created else "updated"
    return RegisterOut(
        gpu_id=gpu.id,
        message=f"GPU {gpu.model} {verb} successfully",
        price_per_hour=gpu.price_per_hour,
        created=created,
    )


# ---- list and details ----------------------------------------------------------------------


@router.get("/gpu/list", response_model=list[GpuOut])
def list_gpus(
    db: DbDep,
    now: NowDep,
    settings: SettingsDep,
    available: bool | None = None,
    status: Literal["available", "booked", "offline"] | None = None,
    model: Annotated[Text | None, Query(max_length=128)] = None,
    memory_min: Annotated[float | None, Query(ge=0, le=1_000_000, allow_inf_nan=False)] = None,
    price_max: Annotated[MoneyIn | None, Query()] = None,
    region: Annotated[Text | None, Query(max_length=64)] = None,
    miner_id: Annotated[Text | None, Query(max_length=128)] = None,
    verified: Annotated[
        bool | None, Query(description="only GPUs whose latest attestation passed (or not)")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JSONResponse:
    """GPUs as a bare array, by list price then id. `model` is a case-insensitive substring
    (`%` and `_` literal); `available=true` means only available, `false` only the others."""
    filters = GpuFilters(
        available=available,
        status=status,
        model=model,
        memory_min=memory_min,
        price_max=price_max,
        region=region,
        miner_id=miner_id,
        verified=verified,
        limit=limit,
        offset=offset,
    )
    with db.read() as session:
        rows = search_gpus(session, filters, now=now, offline_after_s=settings.offline_after_s)
        items = [gpu_object(gpu, state, seen) for gpu, state, seen in rows]
    return JSONResponse(items)


# `/gpu/register` and `/gpu/list` are not GPU ids: without these, GET /gpu/register would ask
# for a GPU named "register" (404) and DELETE /gpu/list for an API key (401) instead of a 405.
@router.api_route("/gpu/register", methods=["GET", "DELETE"], include_in_schema=False)
@router.api_route("/gpu/list", methods=["DELETE"], include_in_schema=False)
def wrong_method_on_a_fixed_path(request: Request) -> JSONResponse:
    allow = "POST" if request.url.path.endswith("/register") else "GET"
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})


@router.get("/gpu/{gpu_id}", response_model=GpuDetailsOut, responses=NOT_FOUND)
def get_gpu(gpu_id: str, db: DbDep, now: NowDep, settings: SettingsDep) -> JSONResponse:
    """The GPU object plus `current_booking` while it is booked."""
    check_gpu_id(gpu_id)
    with db.read() as session:
        row = session.execute(
            gpu_rows(now, settings.offline_after_s).where(Gpu.id == gpu_id)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"GPU {gpu_id} not found")
        gpu, booking, state, seen = row
        return JSONResponse(gpu_details_object(gpu, booking, state, seen, now=now))


class DeletedOut(BaseModel):
    status: Literal["deleted"] = "deleted"
    gpu_id: str


@router.delete("/gpu/{gpu_id}", responses=NOT_FOUND)
def delete_gpu(
    gpu_id: str,
    miner: MinerDep,
    db: DbDep,
    now: NowDep,
    settings: SettingsDep,
    force: bool = False,
) -> DeletedOut:
    """Remove the GPU from the market (owner miner or admin); 409 while booked unless `force`,
    which cancels the booking with a full refund of its unused time."""
    check_gpu_id(gpu_id)
    with db.write() as session:
        gpus.delete_gpu(
            session, gpu_id=gpu_id, principal=miner, force=force, now=now, settings=settings
        )
    return DeletedOut(gpu_id=gpu_id)


# ---- book, release, confirm ----------------------------------------------------------------


class BookIn(BaseModel):
    """Extra keys (the legacy client sends `gpu_id`) are ignored. `total_cost` and
    `max_price_per_hour` are ceilings, never the price."""

    duration_hours: float = Field(gt=0, le=8760, allow_inf_nan=False)
    job_id: Annotated[Text, Field(max_length=128)] | None = None
    total_cost: MoneyIn | None = None
    max_price_per_hour: MoneyIn | None = None


class BookOut(BaseModel):
    booking_id: str
    gpu_id: str
    status: Literal["booked"] = "booked"
    client_id: str
    job_id: str | None
    duration_hours: float
    total_cost: MoneyOut
    price_per_hour: MoneyOut
    base_price: MoneyOut
    dynamic_price: MoneyOut
    multiplier: str
    start_time: str
    end_time: str
    lease_generation: int
    lease_state: str
    pricing_factors: dict[str, Any]
    confidence_score: float


@router.post(
    "/gpu/{gpu_id}/book",
    status_code=201,
    responses={
        **NOT_FOUND,
        402: {"description": "balance too low"},
        409: {"description": "not available, or the quote is above a ceiling"},
    },
)
def book_gpu(
    gpu_id: str, body: BookIn, client: ClientDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> BookOut:
    """Book at the price quoted now; the cost moves from the client's balance into escrow."""
    check_gpu_id(gpu_id)
    with db.write() as session:
        result = bookings.book_gpu(
            session,
            gpu_id=gpu_id,
            client_id=client.subject,
            duration_hours=body.duration_hours,
            job_id=body.job_id,
            max_total_cost=body.total_cost,
            max_price_per_hour=body.max_price_per_hour,
            now=now,
            settings=settings,
        )
    booking, quote = result.booking, result.quote
    return BookOut(
        booking_id=booking.id,
        gpu_id=booking.gpu_id,
        client_id=booking.client_id,
        job_id=booking.job_id,
        duration_hours=booking.duration_hours,
        total_cost=booking.total_cost,
        price_per_hour=quote.price_per_hour,
        base_price=quote.base_price,
        dynamic_price=quote.price_per_hour,
        multiplier=str(quote.multiplier),
        start_time=rfc3339(booking.start_time) or "",
        end_time=rfc3339(booking.end_time) or "",
        lease_generation=booking.lease_generation,
        lease_state=booking.lease_state,
        pricing_factors=quote.factors,
        confidence_score=quote.confidence_score,
    )


class ReleasedOut(BaseModel):
    status: Literal["released"] = "released"
    gpu_id: str
    booking_id: str
    booking_status: str
    refund: MoneyOut
    message: str


class AlreadyAvailableOut(BaseModel):
    status: Literal["already_available"] = "already_available"
    gpu_id: str
    message: str


@router.post("/gpu/{gpu_id}/release", responses=NOT_FOUND)
def release_gpu(
    gpu_id: str, principal: PrincipalDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> ReleasedOut | AlreadyAvailableOut:
    """End the active booking (no body). Its client gets `refund_ratio` of the unused time back;
    the GPU's miner or an admin cancels it with a full refund of the unused time."""
    check_gpu_id(gpu_id)
    with db.write() as session:
        ended = bookings.release_gpu(
            session, gpu_id=gpu_id, principal=principal, now=now, settings=settings
        )
    if ended is None:
        return AlreadyAvailableOut(gpu_id=gpu_id, message=f"GPU {gpu_id} is already available")
    return ReleasedOut(
        gpu_id=gpu_id,
        booking_id=ended.id,
        booking_status=ended.status,
        refund=ended.refund if ended.refund is not None else ZERO,
        message=f"GPU {gpu_id} released successfully",
    )


class ConfirmedOut(BaseModel):
    status: Literal["confirmed"] = "confirmed"
    gpu_id: str
    booking_id: str
    client_id: str
    message: str


@router.post(
    "/gpu/{gpu_id}/confirm",
    responses={**NOT_FOUND, 409: {"description": "not booked"}},
)
def confirm_booking(
    gpu_id: str, client: ClientDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> ConfirmedOut:
    """The active booking's client confirms it. Any body is ignored — never read, stored or
    logged (the legacy client puts its API key there)."""
    check_gpu_id(gpu_id)
    with db.write() as session:
        booking = bookings.confirm_booking(
            session, gpu_id=gpu_id, principal=client, now=now, settings=settings
        )
    return ConfirmedOut(
        gpu_id=gpu_id,
        booking_id=booking.id,
        client_id=booking.client_id,
        message=f"booking {booking.id} on GPU {gpu_id} confirmed",
    )


router.include_router(gpu_reviews.router)
router.include_router(orders.router)
