"""The coordinator API as the agent sees it (docs/api.md): the agent's own pydantic copy.

Requests are strict about what the agent sends; responses ignore unknown keys, so a newer
coordinator that adds fields never breaks an older agent.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

LeaseAckState = Literal["started", "stopped", "rejected"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MinerRegisterRequest(_Request):
    """`POST /v1/miners/register`."""

    capabilities: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = 1
    region: str | None = None


class MinerRegisterResponse(_Response):
    """Answer to a miner registration; also counts as a heartbeat on the coordinator."""

    status: str = "ok"
    miner_id: str
    session_token: str | None = None
    heartbeat_interval_s: float | None = None
    offline_after_s: float | None = None


class GpuRegistration(_Request):
    """The `gpu` object of `POST /v1/marketplace/gpu/register` (idempotent by uuid)."""

    name: str
    memory_gb: int
    memory_mib: int | None = None
    uuid: str
    compute_capability: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    price_per_hour: Decimal
    region: str | None = None

    @field_serializer("price_per_hour")
    def _price_as_string(self, value: Decimal) -> str:
        return str(value)


class GpuRegisterRequest(_Request):
    """`POST /v1/marketplace/gpu/register` body."""

    gpu: GpuRegistration


class GpuRegisterResponse(_Response):
    """Answer to a GPU registration."""

    gpu_id: str
    status: str = "registered"
    created: bool | None = None


class AgentIdentity(_Request):
    """Who sends a heartbeat: a new `instance_id` per start, the host's boot id, a sequence."""

    instance_id: str
    boot_id: str | None = None
    seq: int
    version: str


class GpuReport(_Request):
    """One GPU in a heartbeat; metrics may be None."""

    gpu_id: str
    uuid: str | None = None
    health: Literal["ok", "degraded", "unhealthy", "lost"] = "ok"
    health_reason: str | None = None
    utilization_pct: float | None = None
    memory_used_mib: float | None = None
    temperature_c: float | None = None
    power_draw_w: float | None = None


class LeaseReport(_Request):
    """A lease the agent holds, for reconciliation and display (never ends a booking)."""

    booking_id: str
    generation: int
    state: str


class HeartbeatRequest(_Request):
    """`POST /v1/miners/heartbeat`."""

    inflight: int = 0
    status: str = "ONLINE"
    metadata: dict[str, Any] = Field(default_factory=dict)
    agent: AgentIdentity | None = None
    gpus: list[GpuReport] = Field(default_factory=list)
    leases: list[LeaseReport] = Field(default_factory=list)


class DesiredLease(_Response):
    """A lease as the coordinator wants it; `generation` changes only with the desired state."""

    booking_id: str
    gpu_id: str | None = None
    gpu_uuid: str | None = None
    client_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime
    generation: int
    state: Literal["active", "ended"] = "active"


class HeartbeatResponse(_Response):
    """Answer to a heartbeat: the cadence and the desired leases."""

    status: str = "ok"
    heartbeat_interval_s: float | None = None
    lease_version: int | None = None
    leases: list[DesiredLease] | None = None
    ignored_gpus: list[str] = Field(default_factory=list)


class LeasesResponse(_Response):
    """Answer to the lease long poll `GET /v1/miners/leases`."""

    lease_version: int
    leases: list[DesiredLease] = Field(default_factory=list)


class LeaseAckRequest(_Request):
    """`POST /v1/miners/leases/{booking_id}/ack`."""

    generation: int
    state: LeaseAckState
    detail: str | None = None
