"""The GPU object of docs/api.md, in one place: the row query and the serializer.

List, details (and anything else that shows a GPU) select through `gpu_rows()`, which is
`status.select_gpus()` plus the miner's last heartbeat, and render with `gpu_object()`, so a GPU
looks the same wherever it appears. Rendering is plain dicts (no per-item model validation), which
keeps a 500-item page cheap; `GpuOut` documents the shape in OpenAPI.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Select

from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import render
from coordinator_stub.db.models import Booking, Gpu, Miner
from coordinator_stub.market.status import select_gpus

GpuStatus = Literal["available", "booked", "offline"]


class GpuMetricsOut(BaseModel):
    utilization_pct: float | None
    memory_used_mib: float | None
    temperature_c: float | None
    power_draw_w: float | None
    reported_at: str | None


class AttestationSummaryOut(BaseModel):
    status: Literal["none", "passed", "failed"]
    attested_at: str | None
    fp32_tflops: float | None
    memory_tbps: float | None
    reason: str | None


class CurrentBookingOut(BaseModel):
    booking_id: str
    client_id: str
    duration_hours: float
    total_cost: str
    start_time: str
    end_time: str
    lease_generation: int
    lease_state: str


class GpuOut(BaseModel):
    """A GPU as list and details show it (the AITBC names first)."""

    id: str
    miner_id: str
    model: str
    memory_gb: int
    cuda_version: str | None
    region: str | None
    price_per_hour: str
    status: GpuStatus
    capabilities: list[str]
    created_at: str
    average_rating: float
    total_reviews: int
    uuid: str | None
    memory_mib: int | None
    compute_capability: str | None
    driver_version: str | None
    cuda_cores: int | None
    description: str | None
    health: str
    health_reason: str | None
    last_heartbeat_at: str | None
    metrics: GpuMetricsOut
    verified: bool
    attestation: AttestationSummaryOut


class GpuDetailsOut(GpuOut):
    current_booking: CurrentBookingOut | None = None


def gpu_rows(now: datetime, offline_after_s: float) -> Select[Any]:
    """(Gpu, active Booking or None, status, miner's last heartbeat) for every live GPU."""
    return select_gpus(now, offline_after_s).add_columns(Miner.last_heartbeat_at)


def average_rating(rating_sum: int, total_reviews: int) -> float:
    """Mean rating to 2 dp (0.0 with no reviews), from the exact integer aggregates."""
    if not total_reviews:
        return 0.0
    mean = Decimal(rating_sum) / Decimal(total_reviews)
    return float(mean.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def gpu_object(gpu: Gpu, status: str, last_heartbeat_at: datetime | None) -> dict[str, Any]:
    return {
        "id": gpu.id,
        "miner_id": gpu.miner_id,
        "model": gpu.model,
        "memory_gb": gpu.memory_gb,
        "cuda_version": gpu.cuda_version,
        "region": gpu.region,
        "price_per_hour": render(gpu.price_per_hour),
        "status": status,
        "capabilities": list(gpu.capabilities or []),
        "created_at": rfc3339(gpu.created_at),
        "average_rating": average_rating(gpu.rating_sum, gpu.total_reviews),
        "total_reviews": gpu.total_reviews,
        "uuid": gpu.uuid,
        "memory_mib": gpu.memory_mib,
        "compute_capability": gpu.compute_capability,
        "driver_version": gpu.driver_version,
        "cuda_cores": gpu.cuda_cores,
        "description": gpu.description,
        "health": gpu.health,
        "health_reason": gpu.health_reason,
        "last_heartbeat_at": rfc3339(last_heartbeat_at),
        "metrics": {
            "utilization_pct": gpu.utilization_pct,
            "memory_used_mib": gpu.memory_used_mib,
            "temperature_c": gpu.temperature_c,
            "power_draw_w": gpu.power_draw_w,
            "reported_at": rfc3339(gpu.metrics_at),
        },
        # Proof of hardware (docs/attestation.md): false until an attestation passed.
        "verified": gpu.attestation_status == "passed",
        "attestation": {
            "status": gpu.attestation_status or "none",
            "attested_at": rfc3339(gpu.attested_at),
            "fp32_tflops": gpu.attested_fp32_tflops,
            "memory_tbps": gpu.attested_memory_tbps,
            "reason": gpu.attestation_reason,
        },
    }


def current_booking_object(booking: Booking) -> dict[str, Any]:
    return {
        "booking_id": booking.id,
        "client_id": booking.client_id,
        "duration_hours": booking.duration_hours,
        "total_cost": render(booking.total_cost),
        "start_time": rfc3339(booking.start_time),
        "end_time": rfc3339(booking.end_time),
        "lease_generation": booking.lease_generation,
        "lease_state": booking.lease_state,
    }


def gpu_details_object(
    gpu: Gpu,
    booking: Booking | None,
    status: str,
    last_heartbeat_at: datetime | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The GPU object plus `current_booking`: the booking that has not run out yet, if any (also
    while the GPU reads `offline`, so a renter still sees what it holds)."""
    out = gpu_object(gpu, status, last_heartbeat_at)
    live = booking is not None and booking.end_time > now
    out["current_booking"] = current_booking_object(booking) if booking and live else None
    return out
