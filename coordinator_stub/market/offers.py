"""Offers and bids, the older marketplace surface the legacy client speaks (docs/api.md).

An offer is one (miner, exact GPU model). `sync_offers` (admin) creates the offer rows and
refreshes their descriptive fields; the figures that follow from time — `gpu_count`, `capacity`,
`status`, the price — are derived from the GPUs' current statuses (`status.select_gpus`) when an
offer is read, so an offer never claims capacity that was booked after the last sync. One status
vocabulary: `open` (some GPU available), `reserved` (online, all booked), `closed` (none online).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select, type_coerce, update
from sqlalchemy.orm import Session

from coordinator_stub.auth import Principal
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.clock import new_id
from coordinator_stub.core.money import ZERO, quantize
from coordinator_stub.db.engine import insert_or_ignore
from coordinator_stub.db.models import Bid, Gpu, Miner, Money, Offer
from coordinator_stub.errors import ForbiddenError, NotFoundError
from coordinator_stub.market.status import gpu_status, select_gpus

OFFER_STATUSES = ("open", "reserved", "closed")
BID_STATUSES = ("pending", "accepted", "rejected")


def _gpu_groups(now: datetime, settings: CoordinatorSettings) -> Any:
    """Per (miner, exact model): GPUs online, available now, cheapest list price, memory."""
    live = (
        select_gpus(now, settings.offline_after_s)
        .with_only_columns(
            Gpu.miner_id.label("miner_id"),
            Gpu.model.label("model"),
            Gpu.price_per_hour.label("price"),
            Gpu.memory_gb.label("memory_gb"),
            gpu_status(now, settings.offline_after_s),
        )
        .subquery()
    )
    return (
        select(
            live.c.miner_id,
            live.c.model,
            func.count(case((live.c.status != "offline", 1), else_=None)).label("gpu_count"),
            func.count(case((live.c.status == "available", 1), else_=None)).label("capacity"),
            func.min(live.c.price).label("price"),
            func.min(live.c.memory_gb).label("memory_gb"),
        )
        .group_by(live.c.miner_id, live.c.model)
        .subquery()
    )


@dataclass(frozen=True)
class OfferView:
    offer: Offer
    gpu_count: int
    capacity: int
    status: str
    price: Decimal
    memory_gb: int


class OfferQuery:
    """Offers joined with their GPUs' live figures; filters apply to the live values."""

    def __init__(self, now: datetime, settings: CoordinatorSettings) -> None:
        groups = _gpu_groups(now, settings)
        self.gpu_count: ColumnElement[int] = func.coalesce(groups.c.gpu_count, 0)
        self.capacity: ColumnElement[int] = func.coalesce(groups.c.capacity, 0)
        self.status: ColumnElement[str] = case(
            (self.capacity > 0, "open"), (self.gpu_count > 0, "reserved"), else_="closed"
        )
        self.price: ColumnElement[Decimal] = type_coerce(
            func.coalesce(groups.c.price, Offer.price_per_hour), Money()
        )
        self.memory_gb: ColumnElement[int] = func.coalesce(groups.c.memory_gb, Offer.gpu_memory_gb)
        self.select: Select[Any] = select(
            Offer, self.gpu_count, self.capacity, self.status, self.price, self.memory_gb
        ).outerjoin(
            groups, and_(groups.c.miner_id == Offer.provider, groups.c.model == Offer.gpu_model)
        )

    def filtered(
        self,
        *,
        status: str | None = None,
        gpu_model: str | None = None,
        price_max: Decimal | None = None,
        memory_min: float | None = None,
        region: str | None = None,
        provider: str | None = None,
    ) -> Select[Any]:
        query = self.select
        if status is not None:
            query = query.where(self.status == status)
        if gpu_model:
            query = query.where(
                func.lower(Offer.gpu_model).contains(gpu_model.lower(), autoescape=True)
            )
        if price_max is not None:
            query = query.where(self.price <= quantize(price_max))
        if memory_min is not None:
            query = query.where(self.memory_gb >= memory_min)
        if region:
            query = query.where(func.lower(Offer.region) == region.lower())
        if provider:
            query = query.where(Offer.provider == provider)
        return query


def list_offers(
    session: Session,
    *,
    now: datetime,
    settings: CoordinatorSettings,
    limit: int,
    offset: int,
    **filters: Any,
) -> list[OfferView]:
    query = OfferQuery(now, settings).filtered(**filters)
    rows = session.execute(
        query.order_by(Offer.created_at.desc(), Offer.id).limit(limit).offset(offset)
    ).all()
    return [
        OfferView(
            offer=offer,
            gpu_count=int(gpu_count),
            capacity=int(capacity),
            status=status,
            price=price,
            memory_gb=int(memory_gb),
        )
        for offer, gpu_count, capacity, status, price, memory_gb in rows
    ]


def offer_gpus(
    session: Session, views: Sequence[OfferView], *, now: datetime, settings: CoordinatorSettings
) -> dict[tuple[str, str], list[tuple[Gpu, str]]]:
    """The live GPUs behind each offer, with their derived status, by (provider, model)."""
    if not views:
        return {}
    providers = {v.offer.provider for v in views}
    models = {v.offer.gpu_model for v in views}
    wanted = {(v.offer.provider, v.offer.gpu_model) for v in views}
    found: dict[tuple[str, str], list[tuple[Gpu, str]]] = defaultdict(list)
    for gpu, _booking, status in session.execute(
        select_gpus(now, settings.offline_after_s)
        .where(Gpu.miner_id.in_(providers), Gpu.model.in_(models))
        .order_by(Gpu.price_per_hour, Gpu.id)
    ).all():
        if (gpu.miner_id, gpu.model) in wanted:
            found[(gpu.miner_id, gpu.model)].append((gpu, status))
    return found


@dataclass(frozen=True)
class SyncResult:
    created_offers: int
    updated_offers: int
    offer_ids: list[str]


def sync_offers(session: Session, *, now: datetime, settings: CoordinatorSettings) -> SyncResult:
    """One offer per (miner, exact model) of the live GPUs; idempotent (existing ones updated)."""
    groups: dict[tuple[str, str], list[tuple[Gpu, str]]] = defaultdict(list)
    for gpu, _booking, status in session.execute(
        select_gpus(now, settings.offline_after_s).order_by(Gpu.id)
    ).all():
        groups[(gpu.miner_id, gpu.model)].append((gpu, status))
    existing = {
        (provider, model): offer_id
        for offer_id, provider, model in session.execute(
            select(Offer.id, Offer.provider, Offer.gpu_model)
        ).all()
    }
    regions = dict(session.execute(select(Miner.id, Miner.region)).all())
    created = 0
    ids: list[str] = []
    for key in sorted(set(groups) | set(existing)):
        values = _offer_values(groups.get(key, []), miner_region=regions.get(key[0]))
        offer_id = existing.get(key)
        if offer_id is None:
            offer_id = new_id("off_")
            row = {"id": offer_id, "provider": key[0], "gpu_model": key[1], "created_at": now}
            if insert_or_ignore(
                session, Offer, {**row, "updated_at": now, **values}, ["provider", "gpu_model"]
            ):
                created += 1
                ids.append(offer_id)
                continue
            # Another sync created it between our read and our insert: update theirs.
            offer_id = session.scalars(
                select(Offer.id).where(Offer.provider == key[0], Offer.gpu_model == key[1])
            ).one()
        session.execute(
            update(Offer)
            .where(Offer.id == offer_id)
            .values(updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        ids.append(offer_id)
    return SyncResult(created_offers=created, updated_offers=len(ids) - created, offer_ids=ids)


def offer_status(gpu_count: int, capacity: int) -> str:
    if capacity > 0:
        return "open"
    return "reserved" if gpu_count > 0 else "closed"


def _offer_values(gpus: list[tuple[Gpu, str]], *, miner_region: str | None) -> dict[str, Any]:
    """The stored fields of an offer as of this sync (reads derive the counts afresh)."""
    if not gpus:
        return {"gpu_count": 0, "capacity": 0, "status": "closed"}
    online = sum(1 for _, status in gpus if status != "offline")
    capacity = sum(1 for _, status in gpus if status == "available")
    cuda = Counter(g.cuda_version for g, _ in gpus if g.cuda_version)
    gpu_regions = Counter(g.region for g, _ in gpus if g.region)
    capabilities = sorted({c for g, _ in gpus for c in (g.capabilities or [])})[:64]
    return {
        "gpu_memory_gb": min(g.memory_gb for g, _ in gpus),
        "gpu_count": online,
        "capacity": capacity,
        "price_per_hour": min(g.price_per_hour for g, _ in gpus),
        "cuda_version": min(cuda, key=lambda v: (-cuda[v], v)) if cuda else None,
        "region": miner_region
        or (min(gpu_regions, key=lambda r: (-gpu_regions[r], r)) if gpu_regions else None),
        "status": offer_status(online, capacity),
        "attributes": {"gpu_ids": [g.id for g, _ in gpus], "capabilities": capabilities},
    }


@dataclass(frozen=True)
class MarketStats:
    total_offers: int
    open_capacity: int
    average_price: Decimal
    active_bids: int


def market_stats(session: Session, *, now: datetime, settings: CoordinatorSettings) -> MarketStats:
    """From current data: live offer figures and pending bids."""
    view = OfferQuery(now, settings)
    rows = session.execute(view.select.with_only_columns(view.status, view.capacity, view.price))
    total = 0
    capacity = 0
    open_prices: list[Decimal] = []
    for status, cap, price in rows.all():
        total += 1
        if status == "open":
            capacity += int(cap)
            open_prices.append(price)
    pending = session.scalar(select(func.count()).select_from(Bid).where(Bid.status == "pending"))
    average = quantize(sum(open_prices, ZERO) / len(open_prices)) if open_prices else ZERO
    return MarketStats(
        total_offers=total,
        open_capacity=capacity,
        average_price=average,
        active_bids=int(pending or 0),
    )


# --- bids ---------------------------------------------------------------------------------------


def submit_bid(
    session: Session,
    *,
    client_id: str,
    provider: str,
    capacity: int,
    price: Decimal,
    notes: str | None,
    now: datetime,
) -> Bid:
    bid = Bid(
        id=new_id("bid_"),
        client_id=client_id,
        provider=provider,
        capacity=capacity,
        price=quantize(price),
        notes=notes,
        status="pending",
        created_at=now,
    )
    session.add(bid)
    session.flush()
    return bid


def _visible_to(principal: Principal) -> ColumnElement[bool] | None:
    """A client sees the bids it placed, a miner the bids addressed to it, admin all."""
    if principal.is_admin:
        return None
    if principal.role == "miner":
        return Bid.provider == principal.subject
    return Bid.client_id == principal.subject


def list_bids(
    session: Session,
    *,
    principal: Principal,
    status: str | None,
    provider: str | None,
    limit: int,
    offset: int,
) -> Sequence[Bid]:
    query = select(Bid)
    visible = _visible_to(principal)
    if visible is not None:
        query = query.where(visible)
    if status is not None:
        query = query.where(Bid.status == status)
    if provider is not None:
        query = query.where(Bid.provider == provider)
    return session.scalars(
        query.order_by(Bid.created_at.desc(), Bid.id.desc()).limit(limit).offset(offset)
    ).all()


def get_bid(session: Session, *, bid_id: str, principal: Principal) -> Bid:
    bid = session.get(Bid, bid_id)
    if bid is None:
        raise NotFoundError("bid not found")
    visible = principal.is_admin or principal.subject in (
        bid.client_id if principal.role != "miner" else bid.provider,
    )
    if not visible:
        raise ForbiddenError("this bid is someone else's")
    return bid
