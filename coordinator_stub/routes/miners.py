"""The miner protocol (docs/miner-protocol.md): register, heartbeat, lease long poll, acks, leave.

Register and heartbeat drive every GPU's liveness (`market.status` derives `offline` from them;
`miners.heartbeats` writes them); the desired leases come from `miners.leases`; the long poll
waits on `miners.wakeups.LeaseHub`.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, literal, select, update
from starlette.concurrency import run_in_threadpool

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.core.clock import Clock, rfc3339
from coordinator_stub.db.engine import Database, insert_or_ignore
from coordinator_stub.db.models import Gpu, Miner, UtcDateTime
from coordinator_stub.deps import DbDep, MinerDep, NowDep, SettingsDep
from coordinator_stub.errors import ForbiddenError, NotFoundError
from coordinator_stub.ledger import transfers
from coordinator_stub.miners import heartbeats, leases
from coordinator_stub.miners.ingest import HeartbeatIngest
from coordinator_stub.miners.wakeups import LeaseHub
from coordinator_stub.routes.inputs import Capabilities, Metadata

router = APIRouter(prefix="/v1/miners", tags=["miners"])

Health = Literal["ok", "degraded", "unhealthy", "lost"]


class MinerRegisterIn(BaseModel):
    capabilities: Capabilities = Field(default_factory=dict)
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
    metadata: Metadata = Field(default_factory=dict)
    agent: AgentInfo | None = None
    gpus: list[GpuReport] = Field(default_factory=list, max_length=1024)
    leases: list[LeaseReport] = Field(default_factory=list, max_length=4096)


class DesiredLeaseOut(BaseModel):
    """A lease as the coordinator wants the agent to hold it."""

    booking_id: str
    gpu_id: str
    gpu_uuid: str | None
    client_id: str
    start_time: str
    end_time: str
    generation: int
    state: Literal["active", "ended"]


class HeartbeatOut(BaseModel):
    status: Literal["ok"] = "ok"
    heartbeat_interval_s: float
    lease_version: int
    leases: list[DesiredLeaseOut]
    ignored_gpus: list[str] = Field(
        default_factory=list, description="gpu ids not owned by this miner or whose uuid differs"
    )
    attest_requested: bool = Field(
        default=False, description="an admin asked this miner to attest its GPUs now"
    )


class LeasesOut(BaseModel):
    status: Literal["ok"] = "ok"
    lease_version: int
    changed: bool = Field(description="true when lease_version differs from `since`")
    leases: list[DesiredLeaseOut]


class LeaseAckIn(BaseModel):
    generation: int = Field(ge=0)
    state: leases.LeaseAckState
    detail: str | None = Field(default=None, max_length=512)


class LeaseAckOut(BaseModel):
    status: Literal["ok"] = "ok"
    booking_id: str
    generation: int
    lease_state: str
    booking_status: str


class DeregisterOut(BaseModel):
    status: Literal["deregistered"] = "deregistered"
    miner_id: str
    deregistered_at: str
    offline_gpus: int


def _lease_out(lease: leases.DesiredLease) -> DesiredLeaseOut:
    return DesiredLeaseOut(
        booking_id=lease.booking_id,
        gpu_id=lease.gpu_id,
        gpu_uuid=lease.gpu_uuid,
        client_id=lease.client_id,
        start_time=rfc3339(lease.start_time) or "",
        end_time=rfc3339(lease.end_time) or "",
        generation=lease.generation,
        state=lease.state,
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
        beats = session.execute(
            update(Miner)
            .where(Miner.id == miner.subject)
            .values(
                capabilities=body.capabilities,
                concurrency=body.concurrency,
                region=body.region,
                session_token=token,
                online_heartbeats=heartbeats.online_heartbeats_after_beat(
                    literal(now - timedelta(seconds=settings.offline_after_s), UtcDateTime)
                ),
                last_heartbeat_at=now,
                deregistered_at=None,
            )
            .returning(Miner.online_heartbeats)
        ).scalar_one()
        transfers.ensure_account(session, miner.subject, now)
        events.emit_on_commit(
            session,
            "miner_registered",
            miner_id=miner.subject,
            region=body.region,
            concurrency=body.concurrency,
        )
        if beats == 0:
            events.emit_on_commit(session, "miner_online", miner_id=miner.subject)
    return MinerRegisterOut(
        miner_id=miner.subject,
        session_token=token,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        offline_after_s=settings.offline_after_s,
    )


@router.post(
    "/heartbeat",
    response_model=HeartbeatOut,
    responses={404: {"description": "miner not registered"}},
)
async def heartbeat(request: Request, body: HeartbeatIn, miner: MinerDep) -> Response:
    """Mark the miner alive, store each reported GPU's health and metrics, answer with the leases
    it should hold. Heartbeats that arrive together are stored in one transaction.

    The agent's `leases` report is for display only: it never ends a booking nor changes a
    generation (the agent learns the truth from the answer).
    """
    # The app's state, not three more dependencies: each costs a heartbeat ~10 % (profiled).
    # `miners.ingest` stores it with the heartbeats waiting beside it (group commit); the
    # request awaits its own answer on the event loop, holding no worker thread.
    state = request.app.state
    settings: CoordinatorSettings = state.settings
    ingest: HeartbeatIngest = state.heartbeat_ingest
    stored = await ingest.store(
        heartbeats.Beat(
            miner_id=miner.subject,
            now=state.clock(),
            inflight=body.inflight,
            status_text=body.status,
            agent=body.agent.model_dump() if body.agent else {},
            gpus=body.gpus,
        )
    )
    if stored is None:
        raise NotFoundError("miner not registered")
    answer = HeartbeatOut(
        heartbeat_interval_s=settings.heartbeat_interval_s,
        lease_version=stored.lease_version,
        leases=[_lease_out(lease) for lease in stored.leases],
        ignored_gpus=stored.ignored_gpus,
        attest_requested=stored.attest_requested,
    )
    # Serialized here: FastAPI would validate the model a second time on the way out.
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/leases", responses={404: {"description": "miner not registered"}})
async def poll_leases(
    request: Request,
    miner: MinerDep,
    db: DbDep,
    since: Annotated[int | None, Query(ge=0, description="the lease_version the agent has")] = None,
    wait_s: Annotated[float, Query(ge=0, le=30, description="how long to wait for a change")] = 0,
) -> LeasesOut:
    """Long poll: answers at once when the lease set differs from `since`, else when it changes
    or after `wait_s`. Waiting holds no thread and no database connection (`miners.wakeups`); a
    miner keeps `max_lease_polls_per_miner` polls open at most, a newer one ending the oldest."""
    hub: LeaseHub = request.app.state.lease_hub
    clock: Clock = request.app.state.clock
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with hub.watch(miner.subject, -1 if since is None else since) as waiter:
        while True:
            waiter.event.clear()  # before the read: a change committed after it still wakes us
            final = hub.closing or waiter.superseded or loop.time() >= deadline
            answer = await run_in_threadpool(_read_leases, db, clock, miner.subject, since, final)
            if answer is not None:
                return answer
            await hub.wait(waiter, deadline - loop.time())


def _read_leases(
    db: Database, clock: Clock, miner_id: str, since: int | None, final: bool
) -> LeasesOut | None:
    """The answer when the version differs from `since` (or `final`), else None (keep waiting).

    A `since` above the current version (the coordinator lost its database, or the agent's
    state is from elsewhere) is a difference too: the agent must not wait on a version that
    will not come. The version is read before the leases, in one transaction, so the leases are
    never older than the version the agent will send back as `since`.
    """
    with db.read() as session:
        version = leases.lease_version(session, miner_id)
        if version is None:
            raise NotFoundError("miner not registered")
        changed = since is None or version != since
        if not changed and not final:
            return None
        desired = leases.desired_leases(session, miner_id, clock())
    return LeasesOut(
        lease_version=version, changed=changed, leases=[_lease_out(lease) for lease in desired]
    )


@router.post(
    "/leases/{booking_id}/ack",
    responses={404: {"description": "no such lease"}, 409: {"description": "stale generation"}},
)
def ack_lease(
    booking_id: Annotated[str, Path(max_length=32)],
    body: LeaseAckIn,
    miner: MinerDep,
    db: DbDep,
    now: NowDep,
    settings: SettingsDep,
) -> LeaseAckOut:
    """Record what the host did with a lease; `rejected` fails an active booking (full refund)."""
    with db.write() as session:
        result = leases.ack_lease(
            session,
            miner_id=miner.subject,
            booking_id=booking_id,
            generation=body.generation,
            state=body.state,
            detail=body.detail,
            now=now,
            settings=settings,
        )
    return LeaseAckOut(
        booking_id=result.booking_id,
        generation=result.generation,
        lease_state=result.lease_state,
        booking_status=result.booking_status,
    )


@router.delete("/{miner_id}", responses={404: {"description": "miner not found"}})
def deregister_miner(
    miner_id: Annotated[str, Path(max_length=128)], miner: MinerDep, db: DbDep, now: NowDep
) -> DeregisterOut:
    """Graceful leave: the miner's GPUs are offline at once and its heartbeats get 404 until it
    registers again. Its bookings are left alone: a restarting agent must not kill tenants'
    work; the provider-fault rule ends them if it does not come back within the grace."""
    if not miner.is_admin and miner.subject != miner_id:
        raise ForbiddenError("a miner may deregister only itself")
    with db.write() as session:
        deregistered_at = session.execute(
            update(Miner)
            .where(Miner.id == miner_id)
            .values(
                deregistered_at=func.coalesce(Miner.deregistered_at, now), online_heartbeats=None
            )
            .returning(Miner.deregistered_at)
        ).scalar_one_or_none()
        if deregistered_at is None:
            raise NotFoundError("miner not found")
        gpus = session.scalar(
            select(func.count())
            .select_from(Gpu)
            .where(Gpu.miner_id == miner_id, Gpu.deleted_at.is_(None))
        )
        events.emit_on_commit(session, "miner_deregistered", miner_id=miner_id, gpus=gpus or 0)
    return DeregisterOut(
        miner_id=miner_id, deregistered_at=rfc3339(deregistered_at) or "", offline_gpus=gpus or 0
    )
