"""Heartbeat ingest: a miner's liveness and its GPUs' health and metrics, in a few statements.

The heartbeat is the hot path of the miner protocol (one per host every few seconds), so this is
SQLAlchemy Core with statements built once: the miner row is touched (RETURNING its lease
version) and every reported GPU is updated by one executemany. The route
(`routes/miners.py`) parses the body and answers; this module only writes.

Liveness transitions are logged once each: a heartbeat that finds its miner offline sets
`online_heartbeats` to 0 (the route logs `miner_online`), and `sweep_offline` clears it once
the miner is silent past `offline_after_s` (`miner_offline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    String,
    bindparam,
    case,
    func,
    null,
    or_,
    select,
    update,
)

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.core.clock import rfc3339
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Gpu, Miner, UtcDateTime
from coordinator_stub.market.status import UNHEALTHY


class GpuReport(Protocol):
    """One `gpus[]` entry of a heartbeat, as the route parsed it."""

    @property
    def gpu_id(self) -> str: ...
    @property
    def uuid(self) -> str | None: ...
    @property
    def health(self) -> str: ...
    @property
    def health_reason(self) -> str | None: ...
    @property
    def utilization_pct(self) -> float | None: ...
    @property
    def memory_used_mib(self) -> float | None: ...
    @property
    def temperature_c(self) -> float | None: ...
    @property
    def power_draw_w(self) -> float | None: ...


_MINERS = Miner.__table__.c
_GPUS = Gpu.__table__.c


def online_heartbeats_after_beat(stale_before: ColumnElement[datetime]) -> ColumnElement[int]:
    """`online_heartbeats` once a heartbeat (or registration) arrived: 0 when the miner was
    offline before it — never seen, marked offline by the sweeper, or silent since before
    `stale_before` — else one more. SET expressions read the row as it was, so this needs no
    read first; a returned 0 means "just came online"."""
    was_offline = or_(
        _MINERS.online_heartbeats.is_(None),
        _MINERS.last_heartbeat_at.is_(None),
        _MINERS.last_heartbeat_at < stale_before,
    )
    return case((was_offline, 0), else_=_MINERS.online_heartbeats + 1)


_TOUCH_MINER = (
    update(Miner)
    .where(_MINERS.id == bindparam("miner_id"), _MINERS.deregistered_at.is_(None))
    .values(
        online_heartbeats=online_heartbeats_after_beat(
            bindparam("stale_before", type_=UtcDateTime)
        ),
        last_heartbeat_at=bindparam("now"),
        inflight=bindparam("inflight"),
        status_text=bindparam("status_text"),
        agent=bindparam("agent"),
    )
    .returning(_MINERS.lease_version, _MINERS.online_heartbeats, _MINERS.attest_requested_at)
)
_NOW = bindparam("b_now", type_=UtcDateTime)
# One executemany for all reported GPUs. Ownership and the uuid are checked in the WHERE clause,
# and `unhealthy_since` keeps the moment the GPU first went unhealthy/lost (cleared when it
# recovers; the provider-fault rule measures offline time from it), so nothing is read first.
_STORE_GPU_REPORT = (
    update(Gpu)
    .where(
        _GPUS.id == bindparam("b_gpu_id"),
        _GPUS.miner_id == bindparam("b_miner_id"),
        _GPUS.deleted_at.is_(None),
        or_(
            bindparam("b_any_uuid", type_=Boolean), _GPUS.uuid == bindparam("b_uuid", type_=String)
        ),
    )
    .values(
        health=bindparam("b_health"),
        health_reason=bindparam("b_health_reason"),
        unhealthy_since=case(
            (bindparam("b_unhealthy", type_=Boolean), func.coalesce(_GPUS.unhealthy_since, _NOW)),
            else_=null(),
        ),
        utilization_pct=bindparam("b_utilization_pct"),
        memory_used_mib=bindparam("b_memory_used_mib"),
        temperature_c=bindparam("b_temperature_c"),
        power_draw_w=bindparam("b_power_draw_w"),
        metrics_at=_NOW,
    )
)


def store_gpu_reports(
    conn: Connection, miner_id: str, reports: Sequence[GpuReport], now: datetime
) -> list[str]:
    """Batch-update the miner's reported GPUs; returns the ids it ignored (not its, wrong uuid)."""
    updates: dict[str, dict[str, Any]] = {}
    for report in reports:
        updates[report.gpu_id] = {  # a GPU reported twice: the last report wins
            "b_gpu_id": report.gpu_id,
            "b_miner_id": miner_id,
            "b_any_uuid": report.uuid is None,
            "b_uuid": report.uuid,
            "b_health": report.health,
            "b_health_reason": report.health_reason,
            "b_unhealthy": report.health in UNHEALTHY,
            "b_utilization_pct": report.utilization_pct,
            "b_memory_used_mib": report.memory_used_mib,
            "b_temperature_c": report.temperature_c,
            "b_power_draw_w": report.power_draw_w,
            "b_now": now,
        }
    updated = conn.execute(_STORE_GPU_REPORT, list(updates.values())).rowcount
    if updated == len(updates):
        return []
    # Some report did not match (another miner's GPU, a wrong uuid): find out which, for the
    # answer. Rare, so the common heartbeat never pays for this read.
    owned = dict(
        conn.execute(
            select(_GPUS.id, _GPUS.uuid).where(
                _GPUS.miner_id == miner_id,
                _GPUS.deleted_at.is_(None),
                _GPUS.id.in_(list(updates)),
            )
        ).all()
    )
    return [
        report.gpu_id
        for report in reports
        if report.gpu_id not in owned
        or (report.uuid is not None and report.uuid != owned[report.gpu_id])
    ]


@dataclass(frozen=True, slots=True)
class Touched:
    """A registered miner's row after its heartbeat."""

    lease_version: int
    came_online: bool  # it was offline before this heartbeat
    attest_requested: bool  # an admin asked it to attest its GPUs


def touch_miner(
    conn: Connection,
    *,
    miner_id: str,
    now: datetime,
    offline_after_s: float,
    inflight: int,
    status_text: str,
    agent: dict[str, Any],
) -> Touched | None:
    """Mark a registered miner alive now; None when it is not registered (unknown or
    deregistered)."""
    row = conn.execute(
        _TOUCH_MINER,
        {
            "miner_id": miner_id,
            "now": now,
            "stale_before": now - timedelta(seconds=offline_after_s),
            "inflight": inflight,
            "status_text": status_text,
            "agent": agent,
        },
    ).one_or_none()
    if row is None:
        return None
    return Touched(
        lease_version=row.lease_version,
        came_online=row.online_heartbeats == 0,
        attest_requested=row.attest_requested_at is not None,
    )


def sweep_offline(db: Database, settings: CoordinatorSettings, now: datetime) -> int:
    """Mark offline every miner whose last heartbeat is older than `offline_after_s`, logging
    `miner_offline` once each (a compare-and-set: several sweeping processes log it once)."""
    stale_before = now - timedelta(seconds=settings.offline_after_s)
    with db.write() as session:
        gone = session.execute(
            update(Miner)
            .where(
                Miner.online_heartbeats.is_not(None),
                Miner.deregistered_at.is_(None),
                Miner.last_heartbeat_at < stale_before,
            )
            .values(online_heartbeats=None)
            .returning(Miner.id, Miner.last_heartbeat_at)
            .execution_options(synchronize_session=False)
        ).all()
        for miner_id, last_heartbeat_at in gone:
            silent = (now - last_heartbeat_at).total_seconds() if last_heartbeat_at else None
            events.emit_on_commit(
                session,
                "miner_offline",
                level="warning",
                miner_id=miner_id,
                last_heartbeat_at=rfc3339(last_heartbeat_at),
                silent_s=None if silent is None else round(silent, 1),
            )
    return len(gone)
