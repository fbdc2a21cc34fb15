"""The miner protocol (SPEC §3.11): register and heartbeat drive every GPU's liveness."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select, update

from coordinator_stub import leases, ledger
from coordinator_stub.db import insert_or_ignore
from coordinator_stub.deps import DbDep, MinerDep, NowDep, SettingsDep
from coordinator_stub.errors import NotFoundError
from coordinator_stub.models import Gpu, Miner

router = APIRouter(prefix="/v1/miners", tags=["miners"])

Health = Literal["ok", "degraded", "unhealthy", "lost"]


class MinerRegisterIn(BaseModel):
    capabilities: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(default=1, ge=0, le=1024)
    region: str | None = Field(default=None, max_length=64)


class MinerRegisterOut(BaseModel):
    status: Literal["ok"] = "ok"
    miner_id: str
    session_token: str
    heartbeat_interval_s: float
    offline_after_s: float


class AgentInfo(BaseModel):
    instance_id: str | None = Field(default=None, max_length=128)
    boot_id: str | None = Field(default=None, max_length=128)
    seq: int | None = Field(default=None, ge=0)
    version: str | None = Field(default=None, max_length=64)


class GpuReport(BaseModel):
    gpu_id: str = Field(max_length=32)
    uuid: str | None = Field(default=None, max_length=128)
    health: Health = "ok"
    health_reason: str | None = Field(default=None, max_length=256)
    utilization_pct: float | None = Field(default=None, ge=0, le=100)
    memory_used_mib: float | None = Field(default=None, ge=0, le=1e9)
    temperature_c: float | None = Field(default=None, ge=-100, le=300)
    power_draw_w: float | None = Field(default=None, ge=0, le=1e6)


class LeaseReport(BaseModel):
    booking_id: str = Field(max_length=32)
    generation: int = Field(ge=0)
    state: str = Field(max_length=32)


class HeartbeatIn(BaseModel):
    inflight: int = Field(default=0, ge=0, le=1_000_000)
    status: str = Field(default="ONLINE", max_length=32)
    metadata: dict[str, Any] = Field(default_factory=dict)
    agent: AgentInfo | None = None
    gpus: list[GpuReport] = Field(default_factory=list, max_length=1024)
    leases: list[LeaseReport] = Field(default_factory=list, max_length=4096)


class HeartbeatOut(BaseModel):
    status: Literal["ok"] = "ok"
    heartbeat_interval_s: float
    lease_version: int
    leases: list[dict[str, Any]]
    ignored_gpus: list[str] = Field(
        default_factory=list, description="gpu ids not owned by this miner or whose uuid differs"
    )


@router.post("/register")
def register_miner(
    body: MinerRegisterIn, miner: MinerDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> MinerRegisterOut:
    """Create or refresh the miner; counts as a heartbeat and clears a deregistration."""
    token = secrets.token_hex(16)
    with db.write() as session:
        insert_or_ignore(
            session,
            Miner,
            {"id": miner.subject, "registered_at": now, "capabilities": {}, "agent": {}},
            ["id"],
        )
        session.execute(
            update(Miner)
            .where(Miner.id == miner.subject)
            .values(
                capabilities=body.capabilities,
                concurrency=body.concurrency,
                region=body.region,
                session_token=token,
                last_heartbeat_at=now,
                deregistered_at=None,
            )
        )
        ledger.ensure_account(session, miner.subject, now)
    return MinerRegisterOut(
        miner_id=miner.subject,
        session_token=token,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        offline_after_s=settings.offline_after_s,
    )


@router.post("/heartbeat", responses={404: {"description": "miner not registered"}})
def heartbeat(
    body: HeartbeatIn, miner: MinerDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> HeartbeatOut:
    """Mark the miner alive and store each reported GPU's health and metrics (one round trip)."""
    ignored: list[str] = []
    with db.write() as session:
        touched = session.execute(
            update(Miner)
            .where(Miner.id == miner.subject, Miner.deregistered_at.is_(None))
            .values(
                last_heartbeat_at=now,
                inflight=body.inflight,
                status_text=body.status,
                agent=body.agent.model_dump() if body.agent else {},
            )
        )
        if touched.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFoundError("miner not registered")
        if body.gpus:
            owned = dict(
                session.execute(
                    select(Gpu.id, Gpu.uuid).where(
                        Gpu.miner_id == miner.subject,
                        Gpu.deleted_at.is_(None),
                        Gpu.id.in_([g.gpu_id for g in body.gpus]),
                    )
                ).tuples()
            )
            for report in body.gpus:
                if report.gpu_id not in owned or (
                    report.uuid is not None and report.uuid != owned[report.gpu_id]
                ):
                    ignored.append(report.gpu_id)
                    continue
                session.execute(
                    update(Gpu)
                    .where(Gpu.id == report.gpu_id)
                    .values(
                        health=report.health,
                        health_reason=report.health_reason,
                        utilization_pct=report.utilization_pct,
                        memory_used_mib=report.memory_used_mib,
                        temperature_c=report.temperature_c,
                        power_draw_w=report.power_draw_w,
                        metrics_at=now,
                    )
                )
        lease_version = session.scalar(select(Miner.lease_version).where(Miner.id == miner.subject))
        desired = leases.desired_leases(session, miner.subject, now)
    return HeartbeatOut(
        heartbeat_interval_s=settings.heartbeat_interval_s,
        lease_version=lease_version or 0,
        leases=desired,
        ignored_gpus=ignored,
    )
