"""A renter (or a miner with a client key) cannot buy demand or reviews for next to nothing.

The attack this guards against, as it was reproduced on release 0.1.0: forty bookings of 1e-8 h
(0.00000089 AITBC in all) moved a market's multiplier from 0.83 to the 2.0 cap for 24 h and
bought forty review rights. Now a booking has a floor (`min_booking_s`, `min_charge`), demand is
the GPU-time bookings held (not their count), and a review needs a booking that ran
`review_min_run_s` or completed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from tests.coordinator.market_support import (
    account,
    assert_money_conserved,
    book,
    credit,
    online,
    register,
)
from tests.support import CLIENT2_KEY, CLIENT_KEY, FakeClock, auth


def quote(client: TestClient, gpu: str) -> dict[str, Any]:
    resp = client.get(f"/v1/marketplace/gpu/{gpu}/quote", params={"duration_hours": 1})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def market(client: TestClient) -> tuple[str, str]:
    """Two RTX 4090s of host-01 at 2 AITBC/h, online; alice, an honest renter, holds one.

    At this price 1e-8 h costs 0.00000002 AITBC after rounding: more than zero, which was the
    only floor release 0.1.0 had.
    """
    target, other = register(client, price="2"), register(client, price="2")
    online(client)
    credit(client, "alice", "100")
    credit(client, "bob", "1")  # the attacker: one AITBC
    assert book(client, other, CLIENT_KEY, hours=3).status_code == 201
    return target, other


def test_forty_micro_bookings_are_refused_and_move_nothing(client: TestClient) -> None:
    target, _other = market(client)
    before = quote(client, target)
    for _ in range(40):
        resp = book(client, target, CLIENT2_KEY, hours=1e-8)
        assert resp.status_code == 422
        assert "too short" in resp.json()["detail"]
        review = client.post(
            f"/v1/marketplace/gpu/{target}/reviews", json={"rating": 1}, headers=auth(CLIENT2_KEY)
        )
        assert review.status_code == 403
    # Same moment, same market (alice's honest booking keeps adding held time as the clock
    # moves, so the clock stays put): the attempts changed nothing.
    after = quote(client, target)
    assert after["multiplier"] == before["multiplier"]
    assert after["price_per_hour"] == before["price_per_hour"]
    assert after["factors"]["bookings_24h"] == before["factors"]["bookings_24h"]
    assert account(client, CLIENT2_KEY)["balance"] == Decimal(1)
    reviews = client.get(f"/v1/marketplace/gpu/{target}/reviews").json()
    assert reviews["total_reviews"] == 0
    assert_money_conserved(client.app)


def test_the_shortest_allowed_bookings_cost_real_money_and_buy_no_demand_or_reviews(
    client: TestClient,
) -> None:
    target, _other = market(client)
    before = quote(client, target)
    spent = Decimal(0)
    for _ in range(40):
        booked = book(client, target, CLIENT2_KEY, hours=1 / 60)  # 1 minute: the floor
        assert booked.status_code == 201, booked.text
        cost = Decimal(booked.json()["total_cost"])
        assert cost >= Decimal("0.001")  # min_charge
        released = client.post(
            f"/v1/marketplace/gpu/{target}/release", headers=auth(CLIENT2_KEY)
        ).json()
        spent += cost - Decimal(released["refund"])
        review = client.post(
            f"/v1/marketplace/gpu/{target}/reviews", json={"rating": 1}, headers=auth(CLIENT2_KEY)
        )
        assert review.status_code == 403  # released before it ran review_min_run_s
    after = quote(client, target)
    # Forty bookings released at once held the GPU for no time: demand is booked time, so the
    # market price has not moved by a digit (it moved from 0.83 to the 2.0 cap before).
    assert after["multiplier"] == before["multiplier"]
    assert after["factors"]["bookings_24h"] == before["factors"]["bookings_24h"] + 40
    assert spent >= Decimal("0.02")  # 40 x half of at least 0.001: no longer next to nothing
    assert account(client, CLIENT2_KEY)["balance"] == Decimal(1) - spent
    assert client.get(f"/v1/marketplace/gpu/{target}/reviews").json()["total_reviews"] == 0
    assert_money_conserved(client.app)


def test_demand_follows_the_time_bookings_actually_held(
    client: TestClient, clock: FakeClock
) -> None:
    target, other = market(client)  # alice holds `other` for 3 h from now
    start = Decimal(quote(client, target)["factors"]["demand"])
    assert start == 0  # held for no time yet
    clock.advance(hours=2)
    online(client)
    # 2 of the market's 48 GPU-hours of the day were booked.
    assert quote(client, target)["factors"]["demand"] == "0.04166667"
    assert quote(client, target)["factors"]["booked_hours_24h"] == "2.00000000"
    client.post(f"/v1/marketplace/gpu/{other}/release", headers=auth(CLIENT_KEY))
    clock.advance(hours=2)
    online(client)
    # Released at 2 h: it held 2 GPU-hours, not the 3 it was booked for.
    assert quote(client, target)["factors"]["booked_hours_24h"] == "2.00000000"
