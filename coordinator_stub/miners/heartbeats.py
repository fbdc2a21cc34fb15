"""Heartbeat ingest: a miner's liveness and its GPUs' health and metrics, in a few statements.

The heartbeat is the hot path of the miner protocol (one per host every few seconds), so this is
statements built once, and it stores a *batch* of heartbeats in one transaction
(`miners.ingest` gathers concurrent ones: group commit): one UPDATE for every reported GPU of
the batch, one UPDATE ... RETURNING for every miner (their lease versions), one read of their
desired leases. The route (`routes/miners.py`) parses the body and answers; this module only
writes.

Lock order: GPU rows before miner rows, like a booking (it share-locks the GPU, then bumps the
miner's `lease_version`). The reverse order deadlocked on PostgreSQL under concurrent booking.
Within a batch, miners and GPUs go in id order, so two coordinators' batches queue, not deadlock.

Liveness transitions are logged once each: a heartbeat that finds its miner offline sets
`online_heartbeats` to 0 (`miner_online` is logged), and `sweep_offline` clears it once the
miner is silent past `offline_after_s` (`miner_offline`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Dialect,
    case,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.core.clock import rfc3339
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Gpu, Miner
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


# All reported GPUs of a batch in ONE statement: the rows travel as one JSON array and are
# joined in (`json_each` on SQLite, `jsonb_to_recordset` on PostgreSQL). An executemany
# released and re-took the GIL around every row's SQLite step, and each time the writer waited
# for a busy event loop to hand the GIL back: 60 ms for a batch of 20 heartbeats under a
# 5000-host fleet. Ownership, registration and the uuid are checked in the WHERE clause, and
# `unhealthy_since` keeps the moment the GPU first went unhealthy/lost (cleared when it
# recovers; the provider-fault rule measures offline time from it), so nothing is read first.
# A heartbeat of an unregistered miner (404) thus writes nothing to its GPUs either.
_STORE_GPU_REPORTS_SQL = """
UPDATE gpus
SET health = v.health,
    health_reason = v.health_reason,
    unhealthy_since = CASE WHEN v.unhealthy THEN coalesce(gpus.unhealthy_since, v.now) END,
    utilization_pct = v.utilization_pct,
    memory_used_mib = v.memory_used_mib,
    temperature_c = v.temperature_c,
    power_draw_w = v.power_draw_w,
    metrics_at = v.now
FROM {rows}
WHERE gpus.id = v.gpu_id
  AND gpus.miner_id = v.miner_id
  AND gpus.deleted_at IS NULL
  AND (v.uuid IS NULL OR gpus.uuid = v.uuid)
  AND EXISTS (
    SELECT 1 FROM miners WHERE miners.id = gpus.miner_id AND miners.deregistered_at IS NULL
  )
"""
# Every miner of the batch in one statement too, returning what the answers need.
_TOUCH_MINERS_SQL = """
UPDATE miners
SET online_heartbeats = {came_online},
    last_heartbeat_at = v.now,
    inflight = v.inflight,
    status_text = v.status_text,
    agent = v.agent
FROM {rows}
WHERE miners.id = v.miner_id AND miners.deregistered_at IS NULL
RETURNING miners.id, miners.lease_version, miners.online_heartbeats, miners.attest_requested_at
"""
_DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(),  # type: ignore[no-untyped-call]
}


def _came_online_case(dialect: Dialect) -> str:
    """`online_heartbeats_after_beat` as SQL text over the batch row `v` (one rule, not two)."""
    expression = online_heartbeats_after_beat(literal_column("v.stale_before"))
    return str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _json_rows(dialect: str, columns: dict[str, str]) -> str:
    """The batch's rows as the table `v`, read from its one JSON parameter; `columns` names
    each field with its PostgreSQL type (a `json` field stays JSON on SQLite too)."""
    if dialect == "sqlite":
        fields = ", ".join(
            f"value {'->' if kind == 'json' else '->>'} '{name}' AS {name}"
            for name, kind in columns.items()
        )
        return f"(SELECT {fields} FROM json_each(?)) AS v"  # noqa: S608 (constants only)
    typed = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    return f"jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS v ({typed})"


@dataclass(frozen=True)
class _BatchUpdate:
    """A batch statement and the fields of its rows; the SQL text is built from constants only
    (no input reaches it: the rows are one parameter)."""

    template: str
    columns: dict[str, str]  # field -> PostgreSQL type

    @cached_property
    def sql(self) -> dict[str, str]:
        return {
            name: self.template.format(
                rows=_json_rows(name, self.columns), came_online=_came_online_case(dialect)
            )
            for name, dialect in _DIALECTS.items()
        }

    @cached_property
    def times(self) -> tuple[str, ...]:
        return tuple(name for name, kind in self.columns.items() if kind == "timestamp")


_STORE_GPU_REPORTS = _BatchUpdate(
    _STORE_GPU_REPORTS_SQL,
    {
        "gpu_id": "text", "miner_id": "text", "uuid": "text", "health": "text",
        "health_reason": "text", "unhealthy": "boolean", "utilization_pct": "float8",
        "memory_used_mib": "float8", "temperature_c": "float8", "power_draw_w": "float8",
        "now": "timestamp",
    },
)  # fmt: skip
_TOUCH_MINERS = _BatchUpdate(
    _TOUCH_MINERS_SQL,
    {
        "miner_id": "text", "now": "timestamp", "stale_before": "timestamp",
        "inflight": "integer", "status_text": "text", "agent": "json",
    },
)  # fmt: skip
# How each timestamp is stored (naive UTC; SQLite: text in SQLAlchemy's format).
_TIMESTAMP = _GPUS.metrics_at.type


def _update_from_json(
    conn: Connection, statement: _BatchUpdate, rows: list[dict[str, Any]]
) -> CursorResult[Any]:
    """Run a batch statement over `rows`, sent as one JSON parameter."""
    to_db = _TIMESTAMP.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    for row in rows:  # each timestamp as this database stores it, then as text
        for field in statement.times:
            stored = to_db(row[field]) if to_db else row[field]
            row[field] = stored if isinstance(stored, str) else stored.isoformat(sep=" ")
    payload = json.dumps(rows, separators=(",", ":"), allow_nan=False)  # NaN: the model refuses
    dialect = conn.dialect.name
    params: Any = (payload,) if dialect == "sqlite" else {"rows": payload}
    return conn.exec_driver_sql(statement.sql[dialect], params)


class Touched(NamedTuple):
    """A miner row as the batch update returned it."""

    lease_version: int
    online_heartbeats: int  # 0: it was offline before this heartbeat
    attest_requested_at: object  # only compared with None (raw from the driver)


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
    attest_requested: bool  # an admin asked it to attest its GPUs
    ignored_gpus: list[str]  # reported gpu ids not its own, or whose uuid differs
    leases: list[DesiredLease]


def _gpu_rows(beat: Beat) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for report in beat.gpus:
        rows[report.gpu_id] = {  # a GPU reported twice: the last report wins
            "gpu_id": report.gpu_id,
            "miner_id": beat.miner_id,
            "uuid": report.uuid,
            "health": report.health,
            "health_reason": report.health_reason,
            "unhealthy": report.health in UNHEALTHY,
            "utilization_pct": report.utilization_pct,
            "memory_used_mib": report.memory_used_mib,
            "temperature_c": report.temperature_c,
            "power_draw_w": report.power_draw_w,
            "now": beat.now,
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
    updated = _update_from_json(conn, _STORE_GPU_REPORTS, all_rows).rowcount if all_rows else 0
    touches = [
        {
            "miner_id": beat.miner_id,
            "now": beat.now,
            "stale_before": beat.now - timedelta(seconds=offline_after_s),
            "inflight": beat.inflight,
            "status_text": beat.status_text,
            "agent": beat.agent,
        }
        for beat in ordered
    ]
    returned: list[tuple[Any, ...]] = [
        tuple(row) for row in _update_from_json(conn, _TOUCH_MINERS, touches)
    ]
    touched = {row[0]: Touched(*row[1:]) for row in returned}
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
