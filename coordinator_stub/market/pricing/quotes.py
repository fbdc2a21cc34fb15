"""The one price of a GPU now: gathers market inputs from the database for `pricing`.

Booking and the quote endpoint both call `quote_gpu`, so they agree to the last digit. Nothing
here writes: the inputs are the GPUs' derived statuses (`status.select_gpus`, the one status
rule) and the bookings of the last 48 h (counts, and the GPU-hours they held), all read in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.money import ZERO, quantize
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
    min_charge: Decimal = ZERO  # settings.min_charge: the least any booking costs

    def total_cost(self, duration_hours: Decimal) -> Decimal:
        return max(quantize(duration_hours * self.price_per_hour), self.min_charge)


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
    hours = _booked_hours(session, names, now=now)
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
            booked_hours_24h=hours.get(name, (ZERO, ZERO))[0],
            booked_hours_prev_24h=hours.get(name, (ZERO, ZERO))[1],
        )
    return snapshots


def _booked_hours(
    session: Session, models: Collection[str], *, now: datetime
) -> dict[str, tuple[Decimal, Decimal]]:
    """GPU-hours each market's bookings held in (now - 24 h, now] and in the 24 h before.

    A booking holds its GPU from `start_time` to its release (`ended_at`), its `end_time`, or
    now, whichever comes first. Summed here rather than in SQL: datetime arithmetic differs
    between SQLite and PostgreSQL, and only the bookings that touch the last 48 h are read.
    """
    start = now - 2 * DAY
    rows = session.execute(
        select(Gpu.model, Booking.start_time, Booking.end_time, Booking.ended_at)
        .join(Gpu, Gpu.id == Booking.gpu_id)
        .where(
            Gpu.model.in_(list(models)),
            Booking.start_time < now,
            Booking.end_time > start,
            or_(Booking.ended_at.is_(None), Booking.ended_at > start),
        )
    ).all()
    seconds: dict[str, list[float]] = {}
    windows = ((now - DAY, now), (start, now - DAY))
    for model, began, ends, ended in rows:
        stop = min(ends, now if ended is None else ended, now)
        held = seconds.setdefault(model, [0.0, 0.0])
        for i, (lo, hi) in enumerate(windows):
            overlap = (min(stop, hi) - max(began, lo)).total_seconds()
            if overlap > 0:
                held[i] += overlap
    return {
        model: (_hours(recent), _hours(previous)) for model, (recent, previous) in seconds.items()
    }


def _hours(seconds: float) -> Decimal:
    """Seconds as hours to 8 decimals (microsecond-exact inputs, so float is exact enough)."""
    return quantize(Decimal(repr(seconds)) / Decimal(3600))


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
        min_charge=settings.min_charge,
    )
