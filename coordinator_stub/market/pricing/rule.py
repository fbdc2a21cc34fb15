"""The market-balance pricing engine (docs/renter-quickstart.md): market inputs in, prices out.

Pure: no database, no clock, nothing random, no state between calls. `quotes.py` gathers the
inputs of one market (all GPUs of one exact model) and calls `price_market`; the pricing endpoint
does the same for every market its model substring matches. Because a booking is priced through
`quotes.quote_gpu` too, a quote and a booking taken at the same moment agree to the last digit.

For one market, with `online` = GPUs not offline, `booked` = GPUs booked now, `h24` = GPU-hours
the market's bookings held during the last 24 h (each booking from its start to its end, its
release, or now):

    u = booked / online                        (0 when nothing is online)
    d = h24 / (online * 24)                    (0 when nothing is online): the share of the
                                               market's last day that was rented
    m = clamp(1 + k*(u - u_target) + k_d*d, m_min, m_max)
    dynamic price = quantize(list price * m)

All arithmetic is `Decimal` in a private context, so the thread's decimal context can never
change an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from coordinator_stub.core.money import QUANTUM, ZERO

_CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)
MULTIPLIER_QUANTUM = Decimal("0.00000001")
CONFIDENCE_MIN = 0.3
CONFIDENCE_MAX = 0.95
# Observations at which confidence is halfway between its floor and its ceiling.
CONFIDENCE_HALF_AT = 10


@dataclass(frozen=True)
class PricingParams:
    """The knobs of the market-balance rule (settings `pricing_*`)."""

    k: Decimal = Decimal(1)
    u_target: Decimal = Decimal("0.6")
    k_d: Decimal = Decimal("0.1")
    m_min: Decimal = Decimal("0.8")
    m_max: Decimal = Decimal("2.0")


@dataclass(frozen=True)
class MarketSnapshot:
    """What the engine knows about one market (one exact GPU model) at one moment."""

    model: str
    total_gpus: int
    online_gpus: int  # not offline (available + booked)
    booked_gpus: int
    bookings_24h: int  # bookings created in (now - 24 h, now]: shown, and adds to confidence
    bookings_prev_24h: int = 0  # bookings created in (now - 48 h, now - 24 h]
    # GPU-hours booked within (now - 24 h, now] and the 24 h before: demand and its trend. Time,
    # not a count: a thousand one-minute bookings weigh what one 17-hour booking does.
    booked_hours_24h: Decimal = Decimal(0)
    booked_hours_prev_24h: Decimal = Decimal(0)

    @classmethod
    def from_statuses(
        cls,
        model: str,
        statuses: Iterable[str],
        *,
        bookings_24h: int,
        bookings_prev_24h: int = 0,
        booked_hours_24h: Decimal = Decimal(0),
        booked_hours_prev_24h: Decimal = Decimal(0),
    ) -> MarketSnapshot:
        """Count a market from its GPUs' derived statuses (`available | booked | offline`)."""
        listed = list(statuses)
        return cls(
            model=model,
            total_gpus=len(listed),
            online_gpus=sum(1 for s in listed if s != "offline"),
            booked_gpus=sum(1 for s in listed if s == "booked"),
            bookings_24h=bookings_24h,
            bookings_prev_24h=bookings_prev_24h,
            booked_hours_24h=booked_hours_24h,
            booked_hours_prev_24h=booked_hours_prev_24h,
        )


@dataclass(frozen=True)
class MarketPrice:
    """The engine's answer for one market: one multiplier applies to every GPU in it."""

    snapshot: MarketSnapshot
    utilization: Decimal
    demand: Decimal
    raw_multiplier: Decimal  # before the clamp
    multiplier: Decimal
    confidence: float
    trend: str  # increasing | decreasing | stable
    reasoning: tuple[str, ...]

    def price(self, list_price: Decimal) -> Decimal:
        """The dynamic price of a GPU of this market with the given list price."""
        return _quantize(_CTX.multiply(list_price, self.multiplier))

    def factors(self) -> dict[str, str | int | float]:
        """The inputs and intermediate values, JSON-ready (a booking stores them)."""
        snap = self.snapshot
        return {
            "engine": "market_balance",
            "model": snap.model,
            "online_gpus": snap.online_gpus,
            "booked_gpus": snap.booked_gpus,
            "total_gpus": snap.total_gpus,
            "bookings_24h": snap.bookings_24h,
            "booked_hours_24h": format(snap.booked_hours_24h, "f"),
            # Fixed-point text: str() of a quantized zero is "0E-8", which reads like a bug.
            "utilization": format(self.utilization, "f"),
            "demand": format(self.demand, "f"),
            "multiplier": format(self.multiplier, "f"),
            "confidence": self.confidence,
            "trend": self.trend,
        }


def _quantize(value: Decimal) -> Decimal:
    """Money's 8 dp, half-even, in the engine's own context."""
    return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN, context=_CTX)


def ratio(numerator: int | Decimal, denominator: int) -> Decimal:
    """numerator / denominator to 8 dp (half-even); 0 when the denominator is 0."""
    if denominator <= 0:
        return ZERO
    return _CTX.divide(Decimal(numerator), Decimal(denominator)).quantize(
        MULTIPLIER_QUANTUM, rounding=ROUND_HALF_EVEN, context=_CTX
    )


def confidence(observations: int) -> float:
    """Grows with the number of observations, from 0.3 at none towards (never past) 0.95."""
    n = max(observations, 0)
    value = CONFIDENCE_MIN + (CONFIDENCE_MAX - CONFIDENCE_MIN) * n / (n + CONFIDENCE_HALF_AT)
    return round(min(max(value, CONFIDENCE_MIN), CONFIDENCE_MAX), 4)


def trend(booked_hours_24h: Decimal, booked_hours_prev_24h: Decimal) -> str:
    """Demand direction: GPU-hours booked in the last 24 h against the 24 h before."""
    if booked_hours_24h > booked_hours_prev_24h:
        return "increasing"
    if booked_hours_24h < booked_hours_prev_24h:
        return "decreasing"
    return "stable"


def demand(booked_hours_24h: Decimal, online_gpus: int) -> Decimal:
    """The share of the market's last 24 h that was booked (0 when nothing is online)."""
    return ratio(booked_hours_24h, online_gpus * 24)


def price_market(snapshot: MarketSnapshot, params: PricingParams) -> MarketPrice:
    """Apply the market-balance rule to one market."""
    if snapshot.booked_gpus > snapshot.online_gpus or snapshot.online_gpus > snapshot.total_gpus:
        raise ValueError("inconsistent market snapshot: booked ≤ online ≤ total must hold")
    u = ratio(snapshot.booked_gpus, snapshot.online_gpus)
    d = demand(snapshot.booked_hours_24h, snapshot.online_gpus)
    raw = _CTX.add(
        _CTX.add(Decimal(1), _CTX.multiply(params.k, _CTX.subtract(u, params.u_target))),
        _CTX.multiply(params.k_d, d),
    )
    clamped = min(max(raw, params.m_min), params.m_max)
    m = clamped.quantize(MULTIPLIER_QUANTUM, rounding=ROUND_HALF_EVEN, context=_CTX)
    direction = trend(snapshot.booked_hours_24h, snapshot.booked_hours_prev_24h)
    return MarketPrice(
        snapshot=snapshot,
        utilization=u,
        demand=d,
        raw_multiplier=raw,
        multiplier=m,
        confidence=confidence(snapshot.online_gpus + snapshot.bookings_24h),
        trend=direction,
        reasoning=tuple(_reasons(snapshot, params, u, d, raw, m, direction)),
    )


def _reasons(
    snap: MarketSnapshot,
    params: PricingParams,
    u: Decimal,
    d: Decimal,
    raw: Decimal,
    m: Decimal,
    direction: str,
) -> Iterable[str]:
    yield "Strategy: market_balance applied"
    if snap.online_gpus == 0:
        yield f"No {snap.model} GPU is online: utilization and demand count as 0"
    else:
        yield (
            f"Utilization {_pct(u)} ({snap.booked_gpus} of {snap.online_gpus} online GPUs booked)"
            f" against a target of {_pct(params.u_target)}"
        )
        if u > params.u_target:
            yield "High utilization increases prices"
        elif u < params.u_target:
            yield "Low utilization allows competitive pricing"
        else:
            yield "Utilization is on target"
    hours = snap.booked_hours_24h.normalize(_CTX)
    yield (
        f"{snap.bookings_24h} bookings held {hours:f} GPU-hours in the last 24 h "
        f"(demand {_pct(d)} of the online GPUs' day)"
    )
    if raw > params.m_max:
        yield f"Multiplier capped at the maximum {params.m_max}"
    elif raw < params.m_min:
        yield f"Multiplier floored at the minimum {params.m_min}"
    yield f"Multiplier {m.normalize(_CTX):f} on the list price"
    yield f"Price trend: {direction}"


def _pct(value: Decimal) -> str:
    return f"{_CTX.multiply(value, Decimal(100)).quantize(Decimal('0.1'), context=_CTX)}%"


@dataclass(frozen=True)
class GpuPrice:
    """One GPU priced in its market."""

    gpu_id: str
    status: str
    static_price: Decimal
    dynamic_price: Decimal
    market: MarketPrice

    @property
    def price_change(self) -> Decimal:
        return _quantize(_CTX.subtract(self.dynamic_price, self.static_price))

    @property
    def price_change_percent(self) -> float:
        if self.static_price == 0:
            return 0.0
        percent = _CTX.divide(_CTX.multiply(self.price_change, Decimal(100)), self.static_price)
        return float(percent.quantize(Decimal("0.01"), context=_CTX))


def price_gpus(gpus: Sequence[tuple[str, Decimal, str]], market: MarketPrice) -> list[GpuPrice]:
    """Price `(gpu_id, list_price, status)` rows of one market."""
    return [
        GpuPrice(
            gpu_id=gpu_id,
            status=status,
            static_price=list_price,
            dynamic_price=market.price(list_price),
            market=market,
        )
        for gpu_id, list_price, status in gpus
    ]
