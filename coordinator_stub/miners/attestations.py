"""Proof of hardware, the coordinator's side: challenge a miner's GPU, judge its answer.

1. `challenge`: a fresh 64-bit seed and how many words to fill (`attest_fill_fraction` of the
   GPU's registered memory). The GPU is not bookable while the challenge is open.
2. `filled`: the agent says the fill is done; only now are the positions drawn, so no
   answer can be prepared before the memory holds this seed's sequence.
3. `answer`: the words read back at those positions, the measured FP32 rate and bandwidth,
   and the agent's own NVML checks. Each is judged (aitbc_common.proof for the words, the
   model table for the figures); the GPU carries the verdict (`verified` in the GPU object).

What this proves and what it cannot: docs/attestation.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aitbc_common import gpu_models, proof
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.core.clock import new_id
from coordinator_stub.db.models import ACTIVE, Attestation, Booking, Gpu, Miner
from coordinator_stub.errors import ConflictError, ForbiddenError, NotFoundError

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class AgentCheck:
    name: str
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Answer:
    values: list[int]
    fp32_tflops: float
    memory_tbps: float
    checks: list[AgentCheck]


def _own_gpu(session: Session, gpu_id: str, miner_id: str) -> Gpu:
    gpu = session.get(Gpu, gpu_id)
    if gpu is None or gpu.deleted_at is not None:
        raise NotFoundError(f"GPU {gpu_id} not found")
    if gpu.miner_id != miner_id:
        raise ForbiddenError("a miner may attest only its own GPUs")
    return gpu


def challenge(
    session: Session, *, gpu_id: str, miner_id: str, now: datetime, settings: CoordinatorSettings
) -> Attestation:
    """Open a challenge for the miner's GPU (409 while it is booked: the fill would take the
    tenant's memory)."""
    gpu = _own_gpu(session, gpu_id, miner_id)
    booked = session.scalar(
        select(Booking.id).where(
            Booking.gpu_id == gpu_id, Booking.status == ACTIVE, Booking.end_time > now
        )
    )
    if booked is not None:
        raise ConflictError(f"GPU {gpu_id} is booked ({booked}): attest it once the booking ends")
    mib = gpu.memory_mib or gpu.memory_gb * 1024
    expires = now + timedelta(seconds=settings.attest_timeout_s)
    attestation = Attestation(
        id=new_id("at_"),
        gpu_id=gpu_id,
        miner_id=miner_id,
        seed=f"0x{proof.new_seed():016x}",
        words=int(mib * MIB * settings.attest_fill_fraction) // 8,
        status="challenged",
        created_at=now,
        expires_at=expires,
    )
    session.add(attestation)
    session.execute(update(Gpu).where(Gpu.id == gpu_id).values(attesting_until=expires))
    session.execute(update(Miner).where(Miner.id == miner_id).values(attest_requested_at=None))
    return attestation


def _open(session: Session, attestation_id: str, miner_id: str, now: datetime) -> Attestation:
    att = session.get(Attestation, attestation_id, with_for_update=True)
    if att is None or att.miner_id != miner_id:
        raise NotFoundError(f"attestation {attestation_id} not found")
    if att.status in ("passed", "failed"):
        raise ConflictError(f"attestation {attestation_id} is already {att.status}")
    if now > att.expires_at:
        raise ConflictError(f"attestation {attestation_id} expired at {att.expires_at}")
    return att


def filled(
    session: Session, *, attestation_id: str, miner_id: str, now: datetime, count: int
) -> list[int]:
    """The agent filled the memory: draw the positions it must answer (once; asking again
    answers the same positions)."""
    att = _open(session, attestation_id, miner_id, now)
    if att.positions is None:
        att.positions = proof.choose_positions(att.words, count)
        att.status = "filled"
        att.filled_at = now
    return list(att.positions)


def answer(
    session: Session,
    *,
    attestation_id: str,
    miner_id: str,
    now: datetime,
    given: Answer,
) -> Attestation:
    """Judge the answer and record the verdict on the attestation and its GPU."""
    att = _open(session, attestation_id, miner_id, now)
    if att.positions is None:
        raise ConflictError("the fill was not reported: ask for the positions first")
    gpu = session.get(Gpu, att.gpu_id)
    assert gpu is not None  # the foreign key
    checks = judge(att, gpu, given)
    ok = all(c["ok"] for c in checks)
    failing = next((c for c in checks if not c["ok"]), None)
    att.status = "passed" if ok else "failed"
    att.checks = checks
    att.fp32_tflops = given.fp32_tflops
    att.memory_tbps = given.memory_tbps
    att.reason = None if failing is None else f"{failing['name']}: {failing['reason']}"[:512]
    att.answered_at = now
    session.execute(
        update(Gpu)
        .where(Gpu.id == gpu.id)
        .values(
            attestation_status=att.status,
            attested_at=now,
            attested_fp32_tflops=given.fp32_tflops,
            attested_memory_tbps=given.memory_tbps,
            attestation_reason=att.reason,
            attesting_until=None,
        )
    )
    events.emit_on_commit(
        session,
        "gpu_attested",
        level="info" if ok else "warning",
        gpu_id=gpu.id,
        miner_id=miner_id,
        attestation_id=att.id,
        verified=ok,
        reason=att.reason,
        fp32_tflops=given.fp32_tflops,
        memory_tbps=given.memory_tbps,
    )
    return att


def judge(att: Attestation, gpu: Gpu, given: Answer) -> list[dict[str, Any]]:
    """The coordinator's own checks of an answer, then the agent's NVML checks as reported."""
    positions = att.positions or []
    want = proof.expected(int(att.seed, 16), positions)
    wrong = sum(1 for got, w in zip(given.values, want, strict=False) if got != w)
    wrong += abs(len(given.values) - len(want))
    if given.values:
        proof_reason = f"{len(want)} words at positions drawn after the fill: " + (
            "all right" if wrong == 0 else f"{wrong} wrong (not this challenge's fill)"
        )
    else:
        proof_reason = "no words answered: the agent's self-test did not finish"
    agent = [
        _check(f"agent:{c.name}", c.ok, c.reason)
        for c in given.checks
        if c.name not in ("proof_of_memory", "fp32_throughput", "memory_bandwidth")
    ]
    # Without words the agent's own failing check says why: it leads, so it is the reason.
    out = [] if given.values else [c for c in agent if not c["ok"]]
    out.append(_check("proof_of_memory", wrong == 0 and bool(given.values), proof_reason))
    table = gpu_models.load()
    model = table.by_name(gpu.model)
    if model is None:
        out.append(_check("model_known", False, f"{gpu.model!r} is not in the model table"))
    else:
        bands = table.bands
        out.append(
            _band(
                "fp32_throughput",
                given.fp32_tflops,
                model.fp32_tflops,
                bands.fp32_min,
                bands.fp32_max,
                "TFLOPS",
            )
        )
        out.append(
            _band(
                "memory_bandwidth",
                given.memory_tbps,
                model.memory_tbps,
                bands.bandwidth_min,
                bands.bandwidth_max,
                "TB/s",
            )
        )
    out += agent if given.values else [c for c in agent if c["ok"]]
    return out


def _check(name: str, ok: bool, reason: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "reason": reason[:300]}


def _band(name: str, got: float, datasheet: float, low: float, high: float, unit: str) -> Any:
    ok = datasheet * low <= got <= datasheet * high
    return _check(
        name,
        ok,
        f"{got:.3g} {unit}; the band is {datasheet * low:.3g} to {datasheet * high:.3g}",
    )


def request(session: Session, *, gpu_id: str, now: datetime) -> str:
    """An admin asks the GPU's miner to attest now; returns the miner id."""
    gpu = session.get(Gpu, gpu_id)
    if gpu is None or gpu.deleted_at is not None:
        raise NotFoundError(f"GPU {gpu_id} not found")
    session.execute(update(Miner).where(Miner.id == gpu.miner_id).values(attest_requested_at=now))
    return gpu.miner_id
