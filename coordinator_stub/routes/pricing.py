"""Dynamic pricing (docs/renter-quickstart.md): the market view of a model, and one GPU's quote.

Both are reads: they never write, so asking a hundred times changes nothing.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from decimal import Decimal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import ZERO, MoneyOut, quantize
from coordinator_stub.db.models import Gpu
from coordinator_stub.deps import DbDep, NowDep, SettingsDep
from coordinator_stub.errors import NotFoundError
from coordinator_stub.market.bookings import check_duration
from coordinator_stub.market.pricing.quotes import market_snapshots, pricing_params, quote_gpu
from coordinator_stub.market.pricing.rule import (
    GpuPrice,
    MarketSnapshot,
    demand,
    price_gpus,
    price_market,
    ratio,
)
from coordinator_stub.market.pricing.rule import confidence as confidence_for
from coordinator_stub.market.status import select_gpus
from coordinator_stub.routes.inputs import check_gpu_id

router = APIRouter(prefix="/v1/marketplace", tags=["pricing"])

MAX_DURATION_HOURS = 8760


class StaticPricing(BaseModel):
    min_price: MoneyOut
    max_price: MoneyOut
    average_price: MoneyOut
    available_gpus: int
    total_gpus: int
    recommended_gpu: str


class DynamicPricing(BaseModel):
    min_price: MoneyOut
    max_price: MoneyOut
    average_price: MoneyOut
    price_volatility: MoneyOut = Field(description="sample standard deviation of dynamic prices")
    avg_confidence: float
    recommended_gpu: str
    recommended_price: MoneyOut


class PriceComparison(BaseModel):
    avg_price_change: MoneyOut
    avg_price_change_percent: float
    gpus_with_price_increase: int
    gpus_with_price_decrease: int
    gpus_unchanged: int


class GpuPricing(BaseModel):
    gpu_id: str
    model: str
    status: str
    static_price: MoneyOut
    dynamic_price: MoneyOut
    price_change: MoneyOut
    price_change_percent: float
    multiplier: str
    confidence: float
    trend: str
    reasoning: list[str]


class MarketAnalysis(BaseModel):
    demand_level: float = Field(
        description="share of the online GPUs' last 24 h that was booked (GPU-hours held / "
        "(online GPUs x 24 h))"
    )
    supply_level: float = Field(description="share of the GPUs that are online")
    utilization_rate: float = Field(description="booked / online")
    online_gpus: int
    booked_gpus: int
    bookings_24h: int
    confidence_score: float


class ModelPricingOut(BaseModel):
    model: str
    static_pricing: StaticPricing
    dynamic_pricing: DynamicPricing
    price_comparison: PriceComparison
    individual_gpu_pricing: list[GpuPricing]
    market_analysis: MarketAnalysis
    pricing_timestamp: str


class QuoteOut(BaseModel):
    gpu_id: str
    duration_hours: float
    price_per_hour: MoneyOut
    total_cost: MoneyOut
    base_price: MoneyOut
    multiplier: str
    confidence_score: float
    factors: dict[str, str | int | float]
    quoted_at: str


@router.get("/pricing/{model}", responses={404: {"description": "no GPU matches the model"}})
def get_model_pricing(model: str, db: DbDep, now: NowDep, settings: SettingsDep) -> ModelPricingOut:
    """Static and dynamic prices of every GPU whose model contains `model` (case-insensitive)."""
    if "\x00" in model:  # no model can contain one (registration refuses it)
        raise NotFoundError(f"No GPUs found for model {model}")
    with db.read() as session:
        rows = session.execute(
            select_gpus(now, settings.offline_after_s)
            .where(func.lower(Gpu.model).contains(model.lower(), autoescape=True))
            .order_by(Gpu.price_per_hour, Gpu.id)
        ).all()
        if not rows:
            raise NotFoundError(f"No GPUs found for model {model}")
        markets = market_snapshots(
            session, {gpu.model for gpu, _, _ in rows}, now=now, settings=settings
        )
    params = pricing_params(settings)
    by_model: dict[str, list[tuple[str, Decimal, str]]] = defaultdict(list)
    for gpu, _booking, status in rows:
        by_model[gpu.model].append((gpu.id, gpu.price_per_hour, status))
    priced: dict[str, GpuPrice] = {}
    for name, gpus in by_model.items():
        for entry in price_gpus(gpus, price_market(markets[name], params)):
            priced[entry.gpu_id] = entry
    ordered = [priced[gpu.id] for gpu, _, _ in rows]
    return ModelPricingOut(
        model=model,
        static_pricing=_static(ordered),
        dynamic_pricing=_dynamic(ordered),
        price_comparison=_comparison(ordered),
        individual_gpu_pricing=[_gpu_pricing(entry) for entry in ordered],
        market_analysis=_analysis(list(markets.values())),
        pricing_timestamp=rfc3339(now) or "",
    )


def _mean(values: list[Decimal]) -> Decimal:
    return quantize(sum(values, ZERO) / len(values))


def _bookable_first(entries: list[GpuPrice]) -> list[GpuPrice]:
    available = [e for e in entries if e.status == "available"]
    return available or entries


def _static(entries: list[GpuPrice]) -> StaticPricing:
    prices = [e.static_price for e in entries]
    cheapest = min(_bookable_first(entries), key=lambda e: (e.static_price, e.gpu_id))
    return StaticPricing(
        min_price=min(prices),
        max_price=max(prices),
        average_price=_mean(prices),
        available_gpus=sum(1 for e in entries if e.status == "available"),
        total_gpus=len(entries),
        recommended_gpu=cheapest.gpu_id,
    )


def _dynamic(entries: list[GpuPrice]) -> DynamicPricing:
    prices = [e.dynamic_price for e in entries]
    volatility = quantize(statistics.stdev(prices)) if len(prices) > 1 else ZERO
    best = min(
        _bookable_first(entries),
        key=lambda e: (e.dynamic_price / Decimal(str(e.market.confidence)), e.gpu_id),
    )
    return DynamicPricing(
        min_price=min(prices),
        max_price=max(prices),
        average_price=_mean(prices),
        price_volatility=volatility,
        avg_confidence=round(sum(e.market.confidence for e in entries) / len(entries), 4),
        recommended_gpu=best.gpu_id,
        recommended_price=best.dynamic_price,
    )


def _comparison(entries: list[GpuPrice]) -> PriceComparison:
    changes = [e.price_change for e in entries]
    avg_static = _mean([e.static_price for e in entries])
    avg_change = _mean(changes)
    percent = float(round(avg_change * 100 / avg_static, 2)) if avg_static else 0.0
    return PriceComparison(
        avg_price_change=avg_change,
        avg_price_change_percent=percent,
        gpus_with_price_increase=sum(1 for c in changes if c > 0),
        gpus_with_price_decrease=sum(1 for c in changes if c < 0),
        gpus_unchanged=sum(1 for c in changes if c == 0),
    )


def _gpu_pricing(entry: GpuPrice) -> GpuPricing:
    return GpuPricing(
        gpu_id=entry.gpu_id,
        model=entry.market.snapshot.model,
        status=entry.status,
        static_price=entry.static_price,
        dynamic_price=entry.dynamic_price,
        price_change=entry.price_change,
        price_change_percent=entry.price_change_percent,
        multiplier=str(entry.market.multiplier),
        confidence=entry.market.confidence,
        trend=entry.market.trend,
        reasoning=list(entry.market.reasoning),
    )


def _analysis(markets: list[MarketSnapshot]) -> MarketAnalysis:
    total = sum(m.total_gpus for m in markets)
    online = sum(m.online_gpus for m in markets)
    booked = sum(m.booked_gpus for m in markets)
    bookings = sum(m.bookings_24h for m in markets)
    held = sum((m.booked_hours_24h for m in markets), Decimal(0))
    return MarketAnalysis(
        demand_level=float(demand(held, online)),
        supply_level=float(ratio(online, total)),
        utilization_rate=float(ratio(booked, online)),
        online_gpus=online,
        booked_gpus=booked,
        bookings_24h=bookings,
        confidence_score=confidence_for(online + bookings),
    )


@router.get("/gpu/{gpu_id}/quote", responses={404: {"description": "GPU not found"}})
def get_gpu_quote(
    gpu_id: str,
    db: DbDep,
    now: NowDep,
    settings: SettingsDep,
    duration_hours: float = Query(default=1.0, gt=0, le=MAX_DURATION_HOURS),
) -> QuoteOut:
    """What booking this GPU now for `duration_hours` would cost (the booking uses the same
    function, so a booking at the same moment pays exactly this)."""
    check_gpu_id(gpu_id)
    check_duration(duration_hours, settings)
    with db.read() as session:
        gpu = session.scalar(select(Gpu).where(Gpu.id == gpu_id, Gpu.deleted_at.is_(None)))
        if gpu is None:
            raise NotFoundError(f"GPU {gpu_id} not found")
        quote = quote_gpu(session, gpu, now=now, settings=settings)
    return QuoteOut(
        gpu_id=gpu_id,
        duration_hours=duration_hours,
        price_per_hour=quote.price_per_hour,
        total_cost=quote.total_cost(Decimal(str(duration_hours))),
        base_price=quote.base_price,
        multiplier=str(quote.multiplier),
        confidence_score=quote.confidence_score,
        factors=quote.factors,
        quoted_at=rfc3339(now) or "",
    )
