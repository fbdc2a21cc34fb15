"""Heartbeat ingest: a miner's liveness and its GPUs' health and metrics, in a few statements.

The heartbeat is the hot path of the miner protocol (one per host every few seconds), so this is
SQLAlchemy Core with statements built once, and it stores a *batch* of heartbeats in one
transaction (`miners.ingest` gathers concurrent ones: group commit): one executemany updates
every reported GPU of the batch, one executemany touches every miner, one read returns their
lease versions and one their desired leases. The route (`routes/miners.py`) parses the body
and answers; this module only writes.

Lock order: GPU rows before miner rows, like a booking (it share-locks the GPU, then bumps the
miner's `lease_version`). The reverse order deadlocked on PostgreSQL under concurrent booking.
Within a batch, miners and GPUs go in id order, so two coordinators' batches queue, not deadlock.

Liveness transitions are logged once each: a heartbeat that finds its miner offline sets
`online_heartbeats` to 0 (`miner_online` is logged), and `sweep_offline` clears it once the
miner is silent past `offline_after_s` (`miner_offline`).
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
    exists,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.core.clock import rfc3339
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Gpu, Miner, UtcDateTime
from coordinator_stub.db.prepared import Prepared
from coordinator_stub.market.status import UNHEALTHY
from coordinator_stub.miners.leases import DesiredLease, desired_leases_at


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


# One executemany for all miners of a batch; no RETURNING (executemany cannot return rows on
# every driver): `_TOUCHED` reads the rows back in the same transaction.
_TOUCH_MINER = Prepared(
    update(Miner)
    .where(_MINERS.id == bindparam("b_miner_id"), _MINERS.deregistered_at.is_(None))
    .values(
        online_heartbeats=online_heartbeats_after_beat(
            bindparam("b_stale_before", type_=UtcDateTime)
        ),
        last_heartbeat_at=bindparam("b_now", type_=UtcDateTime),
        inflight=bindparam("b_inflight"),
        status_text=bindparam("b_status_text"),
        agent=bindparam("b_agent"),
    )
)
_TOUCHED = select(
    _MINERS.id, _MINERS.lease_version, _MINERS.online_heartbeats, _MINERS.attest_requested_at
).where(_MINERS.id.in_(bindparam("b_miner_ids", expanding=True)), _MINERS.deregistered_at.is_(None))
_NOW = bindparam("b_now", type_=UtcDateTime)
# One executemany for all reported GPUs. Ownership, registration and the uuid are checked in the
# WHERE clause, and `unhealthy_since` keeps the moment the GPU first went unhealthy/lost (cleared
# when it recovers; the provider-fault rule measures offline time from it), so nothing is read
# first. A heartbeat of an unregistered miner (404) thus writes nothing to its GPUs either.
_STORE_GPU_REPORT = Prepared(
    update(Gpu)
    .where(
        _GPUS.id == bindparam("b_gpu_id"),
        _GPUS.miner_id == bindparam("b_miner_id"),
        _GPUS.deleted_at.is_(None),
        or_(
            bindparam("b_any_uuid", type_=Boolean), _GPUS.uuid == bindparam("b_uuid", type_=String)
        ),
        exists().where(_MINERS.id == _GPUS.miner_id, _MINERS.deregistered_at.is_(None)),
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


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat to store: who sent it, what it says, and its request's `now`."""

    miner_id: str
    now: datetime
    inflight: int
    status_text: str
    agent: dict[str, Any]
    gpus: Sequence[GpuReport]


@dataclass(frozen=True, slots=True)
class Stored:
    """A registered miner's state after its heartbeat, for the answer."""

    lease_version: int
    came_online: bool  # it was offline before this heartbeat
    attest_requested: bool  # an admin asked it to attest its GPUs
    ignored_gpus: list[str]  # reported gpu ids not its own, or whose uuid differs
    leases: list[DesiredLease]


def _gpu_rows(beat: Beat) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for report in beat.gpus:
        rows[report.gpu_id] = {  # a GPU reported twice: the last report wins
            "b_gpu_id": report.gpu_id,
            "b_miner_id": beat.miner_id,
            "b_any_uuid": report.uuid is None,
            "b_uuid": report.uuid,
            "b_health": report.health,
            "b_health_reason": report.health_reason,
            "b_unhealthy": report.health in UNHEALTHY,
            "b_utilization_pct": report.utilization_pct,
            "b_memory_used_mib": report.memory_used_mib,
            "b_temperature_c": report.temperature_c,
            "b_power_draw_w": report.power_draw_w,
            "b_now": beat.now,
        }
    return dict(sorted(rows.items()))


def store_beats(
    session: Session, beats: Sequence[Beat], *, offline_after_s: float
) -> list[Stored | None]:
    """Store heartbeats of distinct miners in the session's transaction; one result per beat,
    None where the miner is not registered (unknown or deregistered: the route answers 404)."""
    assert len({beat.miner_id for beat in beats}) == len(beats), "one beat per miner per batch"
    conn = session.connection()  # Core on the hot path: the ORM layers cost more than SQLite
    ordered = sorted(beats, key=lambda beat: beat.miner_id)
    gpu_rows = {beat.miner_id: _gpu_rows(beat) for beat in ordered}
    all_rows = [row for rows in gpu_rows.values() for row in rows.values()]
    updated = _STORE_GPU_REPORT.execute(conn, all_rows).rowcount if all_rows else 0
    _TOUCH_MINER.execute(
        conn,
        [
            {
                "b_miner_id": beat.miner_id,
                "b_now": beat.now,
                "b_stale_before": beat.now - timedelta(seconds=offline_after_s),
                "b_inflight": beat.inflight,
                "b_status_text": beat.status_text,
                "b_agent": beat.agent,
            }
            for beat in ordered
        ],
    )
    touched = {
        row.id: row
        for row in conn.execute(_TOUCHED, {"b_miner_ids": [b.miner_id for b in ordered]})
    }
    registered = [beat for beat in ordered if beat.miner_id in touched]
    expected = sum(len(gpu_rows[beat.miner_id]) for beat in registered)
    ignored: dict[str, list[str]] = {}
    if updated != expected:
        # Some report did not match (another miner's GPU, a wrong uuid): find out which, for the
        # answer. Rare, so the common heartbeat never pays for this read.
        ignored = {beat.miner_id: _ignored_gpus(conn, beat) for beat in registered if beat.gpus}
    leases = desired_leases_at(conn, {beat.miner_id: beat.now for beat in registered})
    results: list[Stored | None] = []
    for beat in beats:
        row = touched.get(beat.miner_id)
        if row is None:
            results.append(None)
            continue
        if row.online_heartbeats == 0:
            events.emit_on_commit(session, "miner_online", miner_id=beat.miner_id)
        results.append(
            Stored(
                lease_version=row.lease_version,
                came_online=row.online_heartbeats == 0,
                attest_requested=row.attest_requested_at is not None,
                ignored_gpus=ignored.get(beat.miner_id, []),
                leases=leases[beat.miner_id],
            )
        )
    return results


def _ignored_gpus(conn: Connection, beat: Beat) -> list[str]:
    """The beat's reported gpu ids that are not its miner's, or whose uuid differs."""
    owned = dict(
        conn.execute(
            select(_GPUS.id, _GPUS.uuid).where(
                _GPUS.miner_id == beat.miner_id,
                _GPUS.deleted_at.is_(None),
                _GPUS.id.in_([report.gpu_id for report in beat.gpus]),
            )
        ).all()
    )
    return [
        report.gpu_id
        for report in beat.gpus
        if report.gpu_id not in owned
        or (report.uuid is not None and report.uuid != owned[report.gpu_id])
    ]


def sweep_offline(db: Database, settings: CoordinatorSettings, now: datetime) -> int:
    """Mark offline every miner whose last heartbeat is older than `offline_after_s`, logging
    `miner_offline` once each (a compare-and-set: several sweeping processes log it once)."""
    stale_before = now - timedelta(seconds=settings.offline_after_s)
    with db.write() as session:
        is_silent = (
            Miner.online_heartbeats.is_not(None),
            Miner.deregistered_at.is_(None),
            Miner.last_heartbeat_at < stale_before,
        )
        # PostgreSQL: a miner whose row is locked is heartbeating right now (or being booked):
        # skip it rather than wait, and never lock miner rows in an order a batch would not.
        unlocked = select(Miner.id).where(*is_silent).with_for_update(skip_locked=True)
        gone = session.execute(
            update(Miner)
            .where(Miner.id.in_(unlocked.scalar_subquery()), *is_silent)
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
