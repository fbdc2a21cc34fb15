"""Dynamic pricing: the pure market-balance engine (property tests) and the pricing/quote API."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from coordinator_stub.core.money import QUANTUM, quantize
from coordinator_stub.market.pricing.rule import (
    MarketSnapshot,
    PricingParams,
    confidence,
    price_market,
)
from tests.coordinator.market_support import credit, dump_tables, new_booking, online, register
from tests.support import CLIENT_KEY, MINER2_KEY, MINER_KEY, FakeClock

PARAMS = PricingParams()
list_prices = st.decimals(
    min_value=Decimal("0.00000100"), max_value=Decimal("100000"), places=8, allow_nan=False
)


@st.composite
def snapshots(draw: st.DrawFn) -> MarketSnapshot:
    total = draw(st.integers(min_value=0, max_value=10_000))
    online = draw(st.integers(min_value=0, max_value=total))
    booked = draw(st.integers(min_value=0, max_value=online))
    return MarketSnapshot(
        model="M",
        total_gpus=total,
        online_gpus=online,
        booked_gpus=booked,
        bookings_24h=draw(st.integers(min_value=0, max_value=100_000)),
        bookings_prev_24h=draw(st.integers(min_value=0, max_value=100_000)),
        booked_hours_24h=draw(hours),
        booked_hours_prev_24h=draw(hours),
    )


hours = st.decimals(min_value=0, max_value=10**7, places=8, allow_nan=False, allow_infinity=False)


def market(
    online: int, booked: int, held_hours: float = 0, total: int | None = None, bookings: int = 0
) -> MarketSnapshot:
    return MarketSnapshot(
        model="M",
        total_gpus=online if total is None else total,
        online_gpus=online,
        booked_gpus=booked,
        bookings_24h=bookings,
        booked_hours_24h=Decimal(str(held_hours)),
    )


# ---- the pure engine ---------------------------------------------------------------------------


@given(snapshots(), list_prices)
def test_price_stays_within_the_multiplier_bounds(snap: MarketSnapshot, price: Decimal) -> None:
    result = price_market(snap, PARAMS)
    assert PARAMS.m_min <= result.multiplier <= PARAMS.m_max
    dynamic = result.price(price)
    assert quantize(price * PARAMS.m_min) <= dynamic <= quantize(price * PARAMS.m_max)
    assert dynamic == dynamic.quantize(QUANTUM)
    assert 0.3 <= result.confidence <= 0.95


@given(st.integers(min_value=1, max_value=10_000), list_prices)
def test_idle_market_prices_below_list(online: int, price: Decimal) -> None:
    result = price_market(market(online, booked=0), PARAMS)
    assert result.utilization == 0
    assert result.price(price) < price


@given(st.integers(min_value=1, max_value=10_000), st.integers(0, 50_000), list_prices)
def test_fully_booked_market_prices_above_list(online: int, held: int, price: Decimal) -> None:
    result = price_market(market(online, booked=online, held_hours=held), PARAMS)
    assert result.utilization == 1
    assert result.price(price) > price


@given(snapshots(), list_prices)
def test_same_inputs_same_answer_whatever_the_thread_decimal_context(
    snap: MarketSnapshot, price: Decimal
) -> None:
    first = price_market(snap, PARAMS)
    with localcontext() as ctx:
        ctx.prec = 3  # a caller's sloppy context must not leak into prices
        second = price_market(snap, PARAMS)
        assert second.price(price) == first.price(price)
    assert second == first


@given(st.integers(min_value=1, max_value=500), st.data())
def test_more_booked_gpus_never_lower_the_price(online: int, data: st.DataObject) -> None:
    booked = data.draw(st.integers(min_value=0, max_value=online - 1))
    lower = price_market(market(online, booked), PARAMS).multiplier
    higher = price_market(market(online, booked + 1), PARAMS).multiplier
    assert higher >= lower


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_confidence_grows_with_observations_within_bounds(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert 0.3 <= confidence(low) <= confidence(high) <= 0.95


def test_market_balance_rule_by_hand() -> None:
    # 3 of 4 online booked, 48 GPU-hours held in the last 24 h (half of 4 GPU-days):
    # 1 + (0.75 - 0.6) + 0.1 * 0.5 = 1.2
    result = price_market(market(online=4, booked=3, held_hours=48, total=5), PARAMS)
    assert result.demand == Decimal("0.5")
    assert result.multiplier == Decimal("1.2")
    assert result.price(Decimal("0.50000000")) == Decimal("0.60000000")
    # nothing online: u = d = 0, so 1 - 0.6 = 0.4, floored at m_min
    assert price_market(market(0, 0, total=3), PARAMS).multiplier == Decimal("0.8")
    # with the default weights the busiest market (all booked, all day) reaches 1.5 ...
    busiest = price_market(market(2, 2, held_hours=48), PARAMS)
    assert busiest.multiplier == Decimal("1.5")
    # ... and heavier weights are still capped at m_max
    eager = PricingParams(k_d=Decimal(2))
    assert price_market(market(2, 2, held_hours=48), eager).multiplier == Decimal("2.0")
    assert any("capped" in reason for reason in price_market(market(2, 2, 48), eager).reasoning)


def test_demand_is_booked_time_not_the_number_of_bookings() -> None:
    # A thousand one-minute bookings weigh what one 1000-minute booking does; their count
    # moves nothing.
    many_short = price_market(market(4, 0, held_hours=1000 / 60, bookings=1000), PARAMS)
    one_long = price_market(market(4, 0, held_hours=1000 / 60, bookings=1), PARAMS)
    assert many_short.demand == one_long.demand
    assert many_short.multiplier == one_long.multiplier


def test_pricing_factors_are_fixed_point_text_even_when_zero() -> None:
    # An idle market: u = d = 0. str() of a quantized zero is "0E-8"; renters read these.
    factors = price_market(market(online=2, booked=0), PARAMS).factors()
    assert factors["utilization"] == "0.00000000"
    assert factors["demand"] == "0.00000000"
    assert factors["multiplier"] == "0.80000000"


def test_trend_follows_demand_between_the_two_windows() -> None:
    def trend(now: int, before: int) -> str:
        snap = MarketSnapshot(
            "M",
            2,
            2,
            0,
            bookings_24h=1,
            booked_hours_24h=Decimal(now),
            booked_hours_prev_24h=Decimal(before),
        )
        return price_market(snap, PARAMS).trend

    assert (trend(5, 1), trend(1, 5), trend(3, 3)) == ("increasing", "decreasing", "stable")


# ---- the API -----------------------------------------------------------------------------------


def _individual(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["gpu_id"]: row for row in body["individual_gpu_pricing"]}


def test_pricing_unknown_model_is_404(client: TestClient) -> None:
    resp = client.get("/v1/marketplace/pricing/H100")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "No GPUs found for model H100"}


def test_idle_market_is_below_list_and_booked_market_above(
    client: TestClient, clock: FakeClock
) -> None:
    idle = [
        register(client, miner_key=MINER_KEY, name="RTX 4090", price="2.00000000") for _ in range(2)
    ]
    busy = register(client, miner_key=MINER2_KEY, name="A100 80GB", price="3.00000000")
    online(client, MINER_KEY)
    online(client, MINER2_KEY)
    credit(client, "alice", "100")
    new_booking(client, busy, CLIENT_KEY, hours=8)
    clock.advance(hours=6)  # the booking has held its GPU for 6 h of the last 24
    online(client, MINER_KEY)
    online(client, MINER2_KEY)

    body = client.get("/v1/marketplace/pricing/rtx").json()
    assert body["model"] == "rtx"
    rows = _individual(body)
    assert set(rows) == set(idle)
    for row in rows.values():  # u = 0: m = clamp(0.4, 0.8, 2) = 0.8
        assert row["static_price"] == "2.00000000"
        assert row["dynamic_price"] == "1.60000000"
        assert row["price_change"] == "-0.40000000"
        assert row["price_change_percent"] == -20.0
        assert row["trend"] == "stable"
        assert row["reasoning"][0] == "Strategy: market_balance applied"
    assert body["static_pricing"]["available_gpus"] == 2
    assert body["dynamic_pricing"]["price_volatility"] == "0.00000000"
    assert body["price_comparison"]["gpus_with_price_decrease"] == 2
    assert body["market_analysis"]["utilization_rate"] == 0.0

    # A100: 1 of 1 booked, and 6 of its last 24 h booked: 1 + 0.4 + 0.1 * 0.25 = 1.425
    a100 = client.get("/v1/marketplace/pricing/a100%2080gb").json()
    (row,) = a100["individual_gpu_pricing"]
    assert row["dynamic_price"] == "4.27500000"
    assert a100["market_analysis"]["demand_level"] == 0.25
    assert row["trend"] == "increasing"
    assert a100["market_analysis"]["bookings_24h"] == 1
    assert a100["market_analysis"]["utilization_rate"] == 1.0
    assert a100["static_pricing"]["available_gpus"] == 0


def test_pricing_matches_the_model_literally_and_per_exact_model_market(
    client: TestClient,
) -> None:
    register(client, miner_key=MINER_KEY, name="RTX 4090", price="1")
    odd = register(client, miner_key=MINER_KEY, name="Odd_100%", price="1")
    online(client, MINER_KEY)
    assert client.get("/v1/marketplace/pricing/%25").json()["static_pricing"]["total_gpus"] == 1
    assert [
        r["gpu_id"]
        for r in client.get("/v1/marketplace/pricing/d_1").json()["individual_gpu_pricing"]
    ] == [odd]
    assert client.get("/v1/marketplace/pricing/_").json()["static_pricing"]["total_gpus"] == 1


def test_quote_and_booking_at_the_same_moment_agree_to_the_last_digit(
    client: TestClient, clock: FakeClock
) -> None:
    gpus = [
        register(client, miner_key=MINER_KEY, name="RTX 4090", price="0.33333333") for _ in range(3)
    ]
    online(client, MINER_KEY)
    credit(client, "alice", "1000")
    new_booking(client, gpus[0], CLIENT_KEY, hours=4)
    new_booking(client, gpus[1], CLIENT_KEY, hours=4)
    clock.advance(hours=3)  # u = 2/3; the two held 6 of the market's 72 GPU-hours of the day
    online(client, MINER_KEY)
    quote = client.get(
        f"/v1/marketplace/gpu/{gpus[2]}/quote", params={"duration_hours": 7.25}
    ).json()
    booked = new_booking(client, gpus[2], CLIENT_KEY, hours=7.25)
    assert quote["price_per_hour"] == booked["price_per_hour"]
    assert quote["total_cost"] == booked["total_cost"]
    assert quote["base_price"] == booked["base_price"] == "0.33333333"
    assert quote["confidence_score"] == booked["confidence_score"]
    # 1 + (2/3 - 0.6) + 0.1 * (6/72), with u and d taken to 8 dp
    u, d = Decimal("0.66666667"), Decimal("0.08333333")
    multiplier = quantize(Decimal(1) + (u - Decimal("0.6")) + Decimal("0.1") * d)
    assert quote["multiplier"] == str(multiplier) == "1.07500000"
    price = quantize(Decimal("0.33333333") * multiplier)
    assert quote["price_per_hour"] == str(price)
    assert quote["total_cost"] == str(quantize(price * Decimal("7.25")))


def test_quote_validates_input(client: TestClient) -> None:
    gpu = register(client, miner_key=MINER_KEY, name="RTX 4090", price="1.00000000")
    assert client.get("/v1/marketplace/gpu/gpu_0000000000000000/quote").status_code == 404
    for bad in ("0", "-1", "8761", "nan", "abc"):
        resp = client.get(f"/v1/marketplace/gpu/{gpu}/quote", params={"duration_hours": bad})
        assert resp.status_code == 422, bad
    offline = client.get(f"/v1/marketplace/gpu/{gpu}/quote").json()
    assert offline["multiplier"] == "0.80000000"  # nothing online: floored


def test_reading_pricing_a_hundred_times_changes_nothing(
    client: TestClient, clock: FakeClock
) -> None:
    gpus = [
        register(client, miner_key=MINER_KEY, name="RTX 4090", price=p)
        for p in ("1.5", "2.25", "0.75")
    ]
    online(client, MINER_KEY)
    credit(client, "alice", "100")
    new_booking(client, gpus[0], CLIENT_KEY, hours=1)
    clock.advance(minutes=5)
    online(client, MINER_KEY)
    db = client.app.state.db  # type: ignore[attr-defined]
    before = dump_tables(db)
    first = client.get("/v1/marketplace/pricing/RTX").json()
    first_quote = client.get(f"/v1/marketplace/gpu/{gpus[1]}/quote").json()
    for _ in range(100):
        assert client.get("/v1/marketplace/pricing/RTX").json() == first
    for _ in range(20):
        assert client.get(f"/v1/marketplace/gpu/{gpus[1]}/quote").json() == first_quote
    assert dump_tables(db) == before
