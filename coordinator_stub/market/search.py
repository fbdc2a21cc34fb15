"""The GPU list query (docs/api.md), fast at 100 000 GPUs on SQLite and PostgreSQL.

The list is ordered by (list price, id); `ix_gpus_price_id` yields that order, so a filter that
many GPUs pass (available, booked, a price ceiling) stops after about a page of index entries.
A region or miner filter walks its own (region | miner, price, id) index in the same order. The
status filters are booleans (`status.status_condition`), not comparisons of the status CASE:
PostgreSQL cannot estimate the CASE, takes it for 0.5 % of the rows and sorts the whole table.
A selective filter on model or memory is different: the GPUs it wants may sit at the far
(expensive) end of the price order, and the ordered scan would read most of the table first.
Those are answered per partition: the distinct models (or memory sizes) that can match are
found by a loose index scan (one index seek per distinct value), each matching partition is read
in price order from `ix_gpus_model_price_id` / `ix_gpus_memory_price_id` (at most offset + limit
rows each), and the sorted runs are merged. A fleet has few distinct models; when there are too
many, or the page is deep, the single ordered query is used instead. Either way the rows, their
order and the filters are exactly those of the single query.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import ColumnElement, Row, Select, func, or_, text
from sqlalchemy.orm import Session

from coordinator_stub.db.models import Gpu, Miner
from coordinator_stub.market.status import gpu_status, select_gpus, status_condition

GpuRow = Row[Gpu, str, datetime | None]

MAX_DISTINCT = 1024  # distinct values the loose scan reads before giving up on partitions
MAX_PARTITIONS = 32
MAX_PARTITION_DEPTH = 5000  # offset + limit

# Loose index scans: the next distinct value is one seek past the previous one.
_DISTINCT_MODELS = text(
    "WITH RECURSIVE v(x) AS ("
    " SELECT MIN(model) FROM gpus"
    " UNION ALL"
    " SELECT (SELECT MIN(model) FROM gpus WHERE model > v.x) FROM v WHERE v.x IS NOT NULL"
    ") SELECT x FROM v WHERE x IS NOT NULL LIMIT :n"
)
_DISTINCT_MEMORY = text(
    "WITH RECURSIVE v(x) AS ("
    " SELECT MIN(memory_gb) FROM gpus WHERE memory_gb >= :low"
    " UNION ALL"
    " SELECT (SELECT MIN(memory_gb) FROM gpus WHERE memory_gb > v.x) FROM v WHERE v.x IS NOT NULL"
    ") SELECT x FROM v WHERE x IS NOT NULL LIMIT :n"
)


@dataclass(frozen=True)
class GpuFilters:
    available: bool | None = None
    status: str | None = None
    model: str | None = None  # case-insensitive substring, % and _ literal
    memory_min: float | None = None  # GiB
    price_max: Decimal | None = None
    region: str | None = None  # case-insensitive
    miner_id: str | None = None
    verified: bool | None = None  # the latest attestation passed (true) or not (false)
    limit: int = 100
    offset: int = 0


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(
    filters: GpuFilters, now: datetime, offline_after_s: float
) -> Select[Gpu, str, datetime | None]:
    derived = gpu_status(now, offline_after_s)
    # select_gpus' joins and status rule; the list needs no booking columns.
    query = select_gpus(now, offline_after_s).with_only_columns(
        Gpu, derived, Miner.last_heartbeat_at, maintain_column_froms=False
    )
    # The status filters as booleans (status_condition), not comparisons of the CASE: the same
    # rows, but PostgreSQL can estimate them and so walks the (price, id) index with the LIMIT.
    if filters.available is not None:
        available = status_condition("available", now, offline_after_s)
        query = query.where(available if filters.available else ~available)
    if filters.status is not None:
        query = query.where(status_condition(filters.status, now, offline_after_s))
    if filters.model:
        query = query.where(Gpu.model.ilike(f"%{_escape_like(filters.model)}%", escape="\\"))
    if filters.memory_min is not None:
        query = query.where(Gpu.memory_gb >= filters.memory_min)
    if filters.price_max is not None:
        query = query.where(Gpu.price_per_hour <= filters.price_max)
    if filters.region:
        query = query.where(func.lower(Gpu.region) == filters.region.lower())
    if filters.miner_id:
        query = query.where(Gpu.miner_id == filters.miner_id)
    if filters.verified is not None:
        passed = Gpu.attestation_status == "passed"
        query = query.where(passed if filters.verified else or_(~passed, passed.is_(None)))
    return query


def _partitions(session: Session, filters: GpuFilters) -> list[ColumnElement[bool]] | None:
    """One equality condition per partition that may hold matches; None: use one query."""
    if filters.model:
        names = list(session.scalars(_DISTINCT_MODELS, {"n": MAX_DISTINCT + 1}))
        if len(names) > MAX_DISTINCT:
            return None
        # A superset of what the SQL ilike accepts; the ilike itself still filters each run.
        needle = filters.model.casefold()
        matching = [name for name in names if needle in name.casefold()]
        if len(matching) > MAX_PARTITIONS:
            return None
        return [Gpu.model == name for name in matching]
    if filters.memory_min is not None:
        low = math.ceil(filters.memory_min)
        sizes = list(session.scalars(_DISTINCT_MEMORY, {"low": low, "n": MAX_PARTITIONS + 1}))
        if len(sizes) > MAX_PARTITIONS:
            return None
        return [Gpu.memory_gb == size for size in sizes]
    return None


def search_gpus(
    session: Session, filters: GpuFilters, *, now: datetime, offline_after_s: float
) -> list[GpuRow]:
    """(Gpu, status, miner's last heartbeat) rows of one page, by list price then id.

    Partitioned: each partition's run is only (price, id) keys, without ORM objects; the full
    rows are loaded for the merged page alone."""
    query = _filtered(filters, now, offline_after_s)
    order = (Gpu.price_per_hour, Gpu.id)
    depth = filters.offset + filters.limit
    partitions = _partitions(session, filters) if depth <= MAX_PARTITION_DEPTH else None
    if partitions is None:
        page = query.order_by(*order).limit(filters.limit).offset(filters.offset)
        return cast(list[GpuRow], list(session.execute(page).all()))
    keys = query.with_only_columns(Gpu.price_per_hour, Gpu.id, maintain_column_froms=False)
    runs = [
        [
            (price, gpu_id)
            for price, gpu_id in session.execute(keys.where(c).order_by(*order).limit(depth))
        ]
        for c in partitions
    ]
    page_ids = [
        gpu_id for _price, gpu_id in itertools.islice(heapq.merge(*runs), filters.offset, depth)
    ]
    if not page_ids:
        return []
    rows = session.execute(query.where(Gpu.id.in_(page_ids)).order_by(*order)).all()
    return cast(list[GpuRow], list(rows))
