"""The coordinator API as the agent sees it (docs/api.md): the agent's own pydantic copy.

Requests are strict about what the agent sends; responses ignore unknown keys, so a newer
coordinator that adds fields never breaks an older agent.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
)

from agent.log import get_logger

LeaseAckState = Literal["started", "stopped", "rejected"]
_log = get_logger("agent.leases")


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


# What a lease's fields may hold before they reach a hook's environment, the state file or the
# terminal: ids and uuids of the coordinator's own shapes, a client id of the coordinator's
# subject characters. A coordinator (or someone in between) that sends anything else — `$(...)`,
# a newline, a NUL, terminal escapes — gets that lease dropped, not run.
ID = r"^[A-Za-z0-9_.:\-]{1,64}$"
GPU_UUID = r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,127}$"
SUBJECT = r"^[A-Za-z0-9][A-Za-z0-9._@\-]{0,127}$"
_ID = re.compile(ID)


class DesiredLease(_Response):
    """A lease as the coordinator wants it; `generation` changes only with the desired state."""

    booking_id: str = Field(pattern=ID)
    gpu_id: str | None = Field(default=None, pattern=ID)
    gpu_uuid: str | None = Field(default=None, pattern=GPU_UUID)
    client_id: str | None = Field(default=None, pattern=SUBJECT)
    start_time: datetime | None = None
    end_time: datetime
    generation: int = Field(ge=0)
    state: Literal["active", "ended"] = "active"


def _valid_leases(value: Any) -> Any:
    """Keep the leases that pass `DesiredLease`'s checks; log and drop the others (one bad
    lease must not stop the agent from reading the rest)."""
    if not isinstance(value, list):
        return value
    kept = []
    for item in value:
        try:
            kept.append(DesiredLease.model_validate(item))
        except ValidationError as exc:
            booking = item.get("booking_id") if isinstance(item, dict) else None
            _log.warning(
                "lease_dropped_invalid",
                # Named only when the id itself is well-formed: the log must not carry the junk.
                booking_id=booking if isinstance(booking, str) and _ID.fullmatch(booking) else None,
                problems=[".".join(map(str, e["loc"])) for e in exc.errors()],
            )
    return kept


Leases = Annotated[list[DesiredLease], BeforeValidator(_valid_leases)]


class HeartbeatResponse(_Response):
    """Answer to a heartbeat: the cadence and the desired leases."""

    status: str = "ok"
    heartbeat_interval_s: float | None = None
    lease_version: int | None = None
    leases: Leases | None = None
    ignored_gpus: list[str] = Field(default_factory=list)
    attest_requested: bool = False  # an admin asked for an attestation of this host's GPUs


class AttestationChallenge(_Response):
    """`POST /v1/miners/gpus/{gpu_id}/attestations`: fill `words` words from `seed`."""

    attestation_id: str = Field(max_length=32)
    seed: str = Field(pattern=r"^0x[0-9a-f]{16}$")
    words: int = Field(gt=0)


class AttestationPositions(_Response):
    """The positions to read back, drawn after the fill."""

    positions: list[Annotated[int, Field(ge=0)]] = Field(max_length=4096)


class AttestationCheck(BaseModel):
    name: str = Field(max_length=64)
    ok: bool
    reason: str = Field(max_length=1000)


class AttestationAnswer(_Request):
    values: list[str]  # decimal: a u64 does not survive a JSON float
    fp32_tflops: float
    memory_tbps: float
    checks: list[AttestationCheck]


class AttestationVerdict(_Response):
    attestation_id: str
    verified: bool
    reason: str | None = None


class LeasesResponse(_Response):
    """Answer to the lease long poll `GET /v1/miners/leases`."""

    lease_version: int
    leases: Leases = Field(default_factory=list)


class LeaseAckRequest(_Request):
    """`POST /v1/miners/leases/{booking_id}/ack`."""

    generation: int
    state: LeaseAckState
    detail: str | None = None
