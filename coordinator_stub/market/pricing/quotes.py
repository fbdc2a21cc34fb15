"""The one price of a GPU now: gathers market inputs from the database for `pricing`.

Booking and the quote endpoint both call `quote_gpu`, so they agree to the last digit. Nothing
here writes: the inputs are the GPUs' derived statuses (`status.select_gpus`, the one status
rule) and the bookings of the last 48 h, both read in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.money import quantize
from coordinator_stub.db.models import Booking, Gpu
from coordinator_stub.market.pricing.rule import (
    MarketPrice,
    MarketSnapshot,
    PricingParams,
    price_market,
)
from coordinator_stub.market.status import gpu_status, select_gpus

DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Quote:
    price_per_hour: Decimal  # the dynamic price a booking pays per hour
    base_price: Decimal  # the miner's list price
    multiplier: Decimal
    confidence_score: float
    factors: dict[str, Any] = field(default_factory=dict)

    def total_cost(self, duration_hours: Decimal) -> Decimal:
        return quantize(duration_hours * self.price_per_hour)


def pricing_params(settings: CoordinatorSettings) -> PricingParams:
    return PricingParams(
        k=settings.pricing_k,
        u_target=settings.pricing_u_target,
        k_d=settings.pricing_k_d,
        m_min=settings.pricing_m_min,
        m_max=settings.pricing_m_max,
    )


def market_snapshots(
    session: Session, models: Collection[str], *, now: datetime, settings: CoordinatorSettings
) -> dict[str, MarketSnapshot]:
    """Snapshots of the markets of the given exact models, in two grouped queries."""
    if not models:
        return {}
    names = sorted(set(models))
    live = (
        select_gpus(now, settings.offline_after_s)
        .with_only_columns(Gpu.model.label("model"), gpu_status(now, settings.offline_after_s))
        .where(Gpu.model.in_(names))
        .subquery()
    )
    counts: dict[str, dict[str, int]] = {name: {} for name in names}
    for model, status, count in session.execute(
        select(live.c.model, live.c.status, func.count()).group_by(live.c.model, live.c.status)
    ).all():
        counts[model][status] = int(count)
    recent = and_(Booking.created_at > now - DAY, Booking.created_at <= now)
    previous = and_(Booking.created_at > now - 2 * DAY, Booking.created_at <= now - DAY)
    demand: dict[str, tuple[int, int]] = {}
    for model, n_recent, n_previous in session.execute(
        select(
            Gpu.model,
            func.sum(case((recent, 1), else_=0)),
            func.sum(case((previous, 1), else_=0)),
        )
        .join(Gpu, Gpu.id == Booking.gpu_id)
        .where(Gpu.model.in_(names), Booking.created_at > now - 2 * DAY)
        .group_by(Gpu.model)
    ).all():
        demand[model] = (int(n_recent or 0), int(n_previous or 0))
    snapshots = {}
    for name in names:
        by_status = counts[name]
        n_recent, n_previous = demand.get(name, (0, 0))
        snapshots[name] = MarketSnapshot(
            model=name,
            total_gpus=sum(by_status.values()),
            online_gpus=by_status.get("available", 0) + by_status.get("booked", 0),
            booked_gpus=by_status.get("booked", 0),
            bookings_24h=n_recent,
            bookings_prev_24h=n_previous,
        )
    return snapshots


def market_price(
    session: Session, model: str, *, now: datetime, settings: CoordinatorSettings
) -> MarketPrice:
    snapshot = market_snapshots(session, [model], now=now, settings=settings)[model]
    return price_market(snapshot, pricing_params(settings))


def quote_gpu(session: Session, gpu: Gpu, *, now: datetime, settings: CoordinatorSettings) -> Quote:
    """The price per hour a booking of `gpu` made at `now` pays (docs/renter-quickstart.md)."""
    market = market_price(session, gpu.model, now=now, settings=settings)
    return Quote(
        price_per_hour=market.price(gpu.price_per_hour),
        base_price=gpu.price_per_hour,
        multiplier=market.multiplier,
        confidence_score=market.confidence,
        factors=market.factors(),
    )
