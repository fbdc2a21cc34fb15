"""Heartbeat ingest: a miner's liveness and its GPUs' health and metrics, in a few statements.

The heartbeat is the hot path of the miner protocol (one per host every few seconds), so this is
SQLAlchemy Core with statements built once: the miner row is touched (RETURNING its lease
version) and every reported GPU is updated by one executemany. The route
(`routes/miners.py`) parses the body and answers; this module only writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Boolean, Connection, String, bindparam, case, func, null, or_, select, update

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
_TOUCH_MINER = (
    update(Miner)
    .where(_MINERS.id == bindparam("miner_id"), _MINERS.deregistered_at.is_(None))
    .values(
        last_heartbeat_at=bindparam("now"),
        inflight=bindparam("inflight"),
        status_text=bindparam("status_text"),
        agent=bindparam("agent"),
    )
    .returning(_MINERS.lease_version)
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


def touch_miner(
    conn: Connection,
    *,
    miner_id: str,
    now: datetime,
    inflight: int,
    status_text: str,
    agent: dict[str, Any],
) -> int | None:
    """Mark a registered miner alive now; its lease version, or None when it is not registered
    (unknown or deregistered)."""
    version: int | None = conn.execute(
        _TOUCH_MINER,
        {
            "miner_id": miner_id,
            "now": now,
            "inflight": inflight,
            "status_text": status_text,
            "agent": agent,
        },
    ).scalar_one_or_none()
    return version
