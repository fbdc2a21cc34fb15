"""Proof of hardware over HTTP (docs/attestation.md): the miner's three calls, the public
history of a GPU, and an admin's request to attest now. The rules live in
`miners/attestations.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import select

from coordinator_stub.core.clock import rfc3339
from coordinator_stub.db.models import Attestation, Gpu
from coordinator_stub.deps import AdminDep, DbDep, MinerDep, NowDep, SettingsDep
from coordinator_stub.errors import NotFoundError
from coordinator_stub.miners import attestations

router = APIRouter(tags=["attestations"])

AttestationId = Annotated[str, Path(max_length=32)]
GpuId = Annotated[str, Path(max_length=32)]


class ChallengeOut(BaseModel):
    attestation_id: str
    gpu_id: str
    seed: str = Field(description="64-bit seed of the fill, hex (`0x…`)")
    words: int = Field(description="64-bit words to fill")
    expires_at: str


class PositionsOut(BaseModel):
    attestation_id: str
    positions: list[int] = Field(description="word indices to read back, drawn after the fill")


class CheckIn(BaseModel):
    name: str = Field(max_length=64)
    ok: bool
    reason: str = Field(default="", max_length=1000)


class AnswerIn(BaseModel):
    values: list[Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]] = Field(
        max_length=4096, description="the words at `positions`, in order, as decimal strings"
    )
    fp32_tflops: float = Field(ge=0, le=100_000)
    memory_tbps: float = Field(ge=0, le=1_000)
    checks: list[CheckIn] = Field(default_factory=list, max_length=64)


class CheckOut(BaseModel):
    name: str
    ok: bool
    reason: str


class AttestationOut(BaseModel):
    attestation_id: str
    gpu_id: str
    status: Literal["challenged", "filled", "passed", "failed"]
    verified: bool
    reason: str | None
    fp32_tflops: float | None
    memory_tbps: float | None
    created_at: str
    answered_at: str | None
    checks: list[CheckOut]


class AttestRequestOut(BaseModel):
    gpu_id: str
    miner_id: str
    requested_at: str


def attestation_out(att: Attestation) -> dict[str, Any]:
    return {
        "attestation_id": att.id,
        "gpu_id": att.gpu_id,
        "status": att.status,
        "verified": att.status == "passed",
        "reason": att.reason,
        "fp32_tflops": att.fp32_tflops,
        "memory_tbps": att.memory_tbps,
        "created_at": rfc3339(att.created_at),
        "answered_at": rfc3339(att.answered_at),
        "checks": list(att.checks or []),
    }


@router.post(
    "/v1/miners/gpus/{gpu_id}/attestations",
    status_code=201,
    responses={404: {"description": "no such GPU"}, 409: {"description": "the GPU is booked"}},
)
def open_challenge(
    gpu_id: GpuId, miner: MinerDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> ChallengeOut:
    """Open an attestation of one of the miner's GPUs: fill `words` words from `seed`."""
    with db.write() as session:
        att = attestations.challenge(
            session, gpu_id=gpu_id, miner_id=miner.subject, now=now, settings=settings
        )
        return ChallengeOut(
            attestation_id=att.id,
            gpu_id=att.gpu_id,
            seed=att.seed,
            words=att.words,
            expires_at=rfc3339(att.expires_at) or "",
        )


@router.post(
    "/v1/miners/attestations/{attestation_id}/filled",
    responses={404: {"description": "no such attestation"}, 409: {"description": "closed"}},
)
def report_filled(
    attestation_id: AttestationId, miner: MinerDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> PositionsOut:
    """The fill is done: the positions to read back (drawn now, never before)."""
    with db.write() as session:
        positions = attestations.filled(
            session,
            attestation_id=attestation_id,
            miner_id=miner.subject,
            now=now,
            count=settings.attest_positions,
        )
    return PositionsOut(attestation_id=attestation_id, positions=positions)


@router.post(
    "/v1/miners/attestations/{attestation_id}/answer",
    responses={404: {"description": "no such attestation"}, 409: {"description": "closed"}},
)
def submit_answer(
    attestation_id: AttestationId, body: AnswerIn, miner: MinerDep, db: DbDep, now: NowDep
) -> AttestationOut:
    """The words read back, the measured figures and the agent's checks: the verdict."""
    given = attestations.Answer(
        values=[int(v) for v in body.values],
        fp32_tflops=body.fp32_tflops,
        memory_tbps=body.memory_tbps,
        checks=[attestations.AgentCheck(c.name, c.ok, c.reason) for c in body.checks],
    )
    with db.write() as session:
        att = attestations.answer(
            session, attestation_id=attestation_id, miner_id=miner.subject, now=now, given=given
        )
        return AttestationOut.model_validate(attestation_out(att))


@router.get(
    "/v1/marketplace/gpu/{gpu_id}/attestations",
    responses={404: {"description": "no such GPU"}},
)
def list_attestations(gpu_id: GpuId, db: DbDep) -> list[AttestationOut]:
    """A GPU's latest attestations, newest first (at most 20): what renters may check."""
    with db.read() as session:
        gpu = session.get(Gpu, gpu_id)
        if gpu is None or gpu.deleted_at is not None:
            raise NotFoundError(f"GPU {gpu_id} not found")
        rows = session.scalars(
            select(Attestation)
            .where(Attestation.gpu_id == gpu_id)
            .order_by(Attestation.created_at.desc(), Attestation.id.desc())
            .limit(20)
        ).all()
        return [AttestationOut.model_validate(attestation_out(a)) for a in rows]


@router.post(
    "/v1/admin/gpus/{gpu_id}/attest",
    status_code=202,
    responses={404: {"description": "no such GPU"}},
)
def request_attestation(
    gpu_id: GpuId, _admin: AdminDep, db: DbDep, now: NowDep
) -> AttestRequestOut:
    """Ask the GPU's miner to attest its GPUs now (its next heartbeat answer says so)."""
    with db.write() as session:
        miner_id = attestations.request(session, gpu_id=gpu_id, now=now)
    return AttestRequestOut(gpu_id=gpu_id, miner_id=miner_id, requested_at=rfc3339(now) or "")
