"""Booking, release, confirm, expiry and settlement (docs/api.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from coordinator_stub.core.money import quantize
from coordinator_stub.db.models import Booking, LedgerEntry
from coordinator_stub.market import bookings
from tests.coordinator.market_support import (
    account,
    assert_money_conserved,
    book,
    credit,
    details,
    online,
    register,
)
from tests.support import ADMIN_KEY, CLIENT2_KEY, CLIENT_KEY, MINER2_KEY, MINER_KEY, FakeClock, auth


def test_book_prices_through_the_quote_and_escrows_the_cost(client: TestClient, gpu: str) -> None:
    resp = book(client, gpu, CLIENT_KEY, hours=4, job_id="job-7")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "booked"
    assert body["gpu_id"] == gpu
    assert body["booking_id"].startswith("bk_")
    assert len(body["booking_id"]) == 19
    assert body["base_price"] == "0.50000000"
    assert body["dynamic_price"] == body["price_per_hour"]
    price = Decimal(body["price_per_hour"])
    assert Decimal(body["total_cost"]) == quantize(4 * price)
    assert body["start_time"] == "2026-11-26T12:00:00.000000Z"
    assert body["end_time"] == "2026-11-26T16:00:00.000000Z"
    assert body["lease_generation"] == 1
    assert isinstance(body["pricing_factors"], dict)
    assert 0 <= body["confidence_score"] <= 1
    assert account(client, CLIENT_KEY) == {
        "balance": 100 - Decimal(body["total_cost"]),
        "escrowed": Decimal(body["total_cost"]),
        "staked": Decimal(0),
    }
    shown = details(client, gpu)
    assert shown["status"] == "booked"
    assert shown["current_booking"]["booking_id"] == body["booking_id"]
    assert shown["current_booking"]["client_id"] == "alice"
    assert shown["current_booking"]["lease_state"] == "pending"
    assert_money_conserved(client.app)


def test_book_refusals(client: TestClient, gpu: str) -> None:
    assert book(client, "gpu_0000000000000000", CLIENT_KEY).status_code == 404
    assert book(client, gpu, MINER_KEY).status_code == 403
    for hours in (0, -1, 8761, "NaN", "abc"):
        assert book(client, gpu, CLIENT_KEY, hours=hours).status_code == 422, hours  # type: ignore[arg-type]
    credit(client, "carol-broke", "0.01")
    carol = client.post(
        "/v1/admin/api-keys",
        json={"role": "client", "subject": "carol-broke"},
        headers=auth(ADMIN_KEY),
    ).json()["api_key"]
    short = book(client, gpu, carol, hours=4)
    assert short.status_code == 402
    assert "insufficient" in short.json()["detail"]
    assert book(client, gpu, CLIENT_KEY).status_code == 201
    taken = book(client, gpu, CLIENT2_KEY)
    assert taken.status_code == 409
    assert "not available" in taken.json()["detail"]
    assert account(client, CLIENT2_KEY)["balance"] == 100


def test_offline_gpu_cannot_be_booked(client: TestClient, clock: FakeClock) -> None:
    gpu = register(client)
    credit(client, "alice", "10")
    assert book(client, gpu, CLIENT_KEY).status_code == 409  # never heartbeated
    online(client)
    clock.advance(seconds=31)
    assert details(client, gpu)["status"] == "offline"
    assert book(client, gpu, CLIENT_KEY).status_code == 409
    online(client)
    assert book(client, gpu, CLIENT_KEY).status_code == 201


def test_ceilings_refuse_a_quote_above_them_and_say_the_quote(client: TestClient, gpu: str) -> None:
    low = book(client, gpu, CLIENT_KEY, hours=4, total_cost="0.01")
    assert low.status_code == 409
    assert "quote" in low.json()["detail"]
    assert "AITBC" in low.json()["detail"]
    capped = book(client, gpu, CLIENT_KEY, hours=4, max_price_per_hour="0.00000001")
    assert capped.status_code == 409
    assert account(client, CLIENT_KEY)["escrowed"] == 0
    ok = book(client, gpu, CLIENT_KEY, hours=4, total_cost="1000", job_id=None)
    assert ok.status_code == 201


def test_release_after_one_of_four_hours_refunds_half_of_three_hours(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    booked = book(client, gpu, CLIENT_KEY, hours=4).json()
    total = Decimal(booked["total_cost"])
    clock.advance(hours=1)
    online(client)
    resp = client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=auth(CLIENT_KEY))
    assert resp.status_code == 200
    body = resp.json()
    refund = quantize(Decimal("0.5") * total * 3 / 4)
    assert body == {
        "status": "released",
        "gpu_id": gpu,
        "booking_id": booked["booking_id"],
        "booking_status": "released",
        "refund": f"{refund:.8f}",
        "message": f"GPU {gpu} released successfully",
    }
    assert account(client, CLIENT_KEY) == {
        "balance": 100 - total + refund,
        "escrowed": Decimal(0),
        "staked": Decimal(0),
    }
    assert account(client, MINER_KEY)["balance"] == total - refund
    assert details(client, gpu)["status"] == "available"
    again = client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=auth(CLIENT_KEY))
    assert again.json() == {
        "status": "already_available",
        "gpu_id": gpu,
        "message": f"GPU {gpu} is already available",
    }
    assert_money_conserved(client.app)


@pytest.mark.parametrize("key", [MINER_KEY, ADMIN_KEY])
def test_provider_release_refunds_all_unused_time(
    client: TestClient, clock: FakeClock, gpu: str, key: str
) -> None:
    booked = book(client, gpu, CLIENT_KEY, hours=4).json()
    total = Decimal(booked["total_cost"])
    clock.advance(hours=1)
    online(client)
    body = client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=auth(key)).json()
    refund = quantize(total * 3 / 4)
    assert body["booking_status"] == "cancelled_by_provider"
    assert Decimal(body["refund"]) == refund
    assert account(client, CLIENT_KEY)["balance"] == 100 - total + refund
    assert account(client, MINER_KEY)["balance"] == total - refund
    assert_money_conserved(client.app)


def test_release_refunds_to_the_microsecond(client: TestClient, clock: FakeClock, gpu: str) -> None:
    booked = book(client, gpu, CLIENT_KEY, hours=2).json()
    total = Decimal(booked["total_cost"])
    clock.advance(seconds=1, microseconds=1)  # no minimum charge, nothing rounded to an hour
    body = client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=auth(CLIENT_KEY)).json()
    duration_us = 2 * 3600 * 10**6
    unused_us = duration_us - 1_000_001
    assert Decimal(body["refund"]) == quantize(Decimal("0.5") * total * unused_us / duration_us)


def test_only_the_client_the_miner_or_admin_may_release(client: TestClient, gpu: str) -> None:
    book(client, gpu, CLIENT_KEY)
    assert (
        client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=auth(CLIENT2_KEY)).status_code
        == 403
    )
    assert (
        client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=auth(MINER2_KEY)).status_code
        == 403
    )
    assert client.post(f"/v1/marketplace/gpu/{gpu}/release").status_code == 401
    assert (
        client.post("/v1/marketplace/gpu/gpu_nope/release", headers=auth(CLIENT_KEY)).status_code
        == 404
    )
    assert details(client, gpu)["status"] == "booked"


def test_booking_completes_at_end_time_without_an_api_call(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    booked = book(client, gpu, CLIENT_KEY, hours=2).json()
    total = Decimal(booked["total_cost"])
    clock.advance(hours=2)
    online(client)
    # Read before any sweep: over at once.
    assert details(client, gpu)["status"] == "available"
    assert details(client, gpu)["current_booking"] is None
    order = client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)).json()[0]
    assert order["status"] == "completed"
    assert order["ended_at"] == booked["end_time"]
    assert account(client, CLIENT_KEY)["escrowed"] == total  # not settled yet: reads never write
    sweeper = client.app.state.sweeper  # type: ignore[attr-defined]
    assert sweeper.run_once()["bookings_completed"] == 1
    assert sweeper.run_once()["bookings_completed"] == 0
    assert account(client, CLIENT_KEY) == {
        "balance": 100 - total,
        "escrowed": Decimal(0),
        "staked": Decimal(0),
    }
    assert account(client, MINER_KEY)["balance"] == total
    settled = client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)).json()[0]
    assert settled["status"] == "completed"
    assert settled["refund"] == "0.00000000"
    assert settled["ended_at"] == booked["end_time"]
    assert details(client, gpu)["status"] == "available"
    assert_money_conserved(client.app)


def test_book_settles_a_run_out_booking_first(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    first = book(client, gpu, CLIENT_KEY, hours=1).json()
    clock.advance(hours=1, seconds=1)
    online(client)
    second = book(client, gpu, CLIENT2_KEY, hours=1)
    assert second.status_code == 201, second.text
    orders = client.get("/v1/marketplace/orders", headers=auth(ADMIN_KEY)).json()
    by_id = {order["booking_id"]: order for order in orders}
    assert by_id[first["booking_id"]]["status"] == "completed"
    assert by_id[first["booking_id"]]["refund"] == "0.00000000"
    assert by_id[second.json()["booking_id"]]["status"] == "active"
    assert account(client, CLIENT_KEY)["escrowed"] == 0
    assert_money_conserved(client.app)


def test_end_booking_settles_once_and_bumps_the_generation(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    booking_id = book(client, gpu, CLIENT_KEY, hours=4).json()["booking_id"]
    db, settings = client.app.state.db, client.app.state.settings  # type: ignore[attr-defined]
    clock.advance(hours=3)
    with db.write() as session:
        ended = bookings.end_booking(
            session, booking_id, outcome="failed", now=clock.now, settings=settings
        )
        assert ended is not None
        assert (ended.status, ended.lease_generation) == ("failed", 2)
        assert ended.refund == quantize(ended.total_cost / 4)
        assert ended.miner_revenue == ended.total_cost - ended.refund
        assert ended.stakers_reward == 0
    with db.write() as session:
        assert (
            bookings.end_booking(
                session, booking_id, outcome="completed", now=clock.now, settings=settings
            )
            is None
        )
    with db.read() as session:
        legs = session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.ref == booking_id, LedgerEntry.kind == "booking_failed"
            )
        ).all()
        assert len(legs) == 3
        assert session.get(Booking, booking_id).status == "failed"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown booking outcome"), db.write() as session:
        bookings.end_booking(session, booking_id, outcome="nope", now=clock.now, settings=settings)


def test_settlement_pays_the_stakers_share_of_the_miner_revenue(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    stake = client.post(
        "/v1/stake", json={"miner_id": "host-01", "amount": "100"}, headers=auth(CLIENT2_KEY)
    )
    assert stake.status_code == 201, stake.text
    booked = book(client, gpu, CLIENT_KEY, hours=4).json()
    total = Decimal(booked["total_cost"])
    clock.advance(hours=4)
    assert client.app.state.sweeper.run_once()["bookings_completed"] == 1  # type: ignore[attr-defined]
    share = quantize(Decimal("0.05") * total)
    assert account(client, MINER_KEY)["balance"] == total - share
    assert account(client, CLIENT2_KEY)["staked"] == 100 + share
    with client.app.state.db.read() as session:  # type: ignore[attr-defined]
        row = session.get(Booking, booked["booking_id"])
        assert (row.miner_revenue, row.stakers_reward) == (total - share, share)  # type: ignore[union-attr]
    assert_money_conserved(client.app)


def test_confirm_is_for_the_booking_client_and_ignores_the_body(
    client: TestClient, gpu: str
) -> None:
    not_booked = client.post(f"/v1/marketplace/gpu/{gpu}/confirm", headers=auth(CLIENT_KEY))
    assert not_booked.status_code == 409
    booking_id = book(client, gpu, CLIENT_KEY).json()["booking_id"]
    stranger = client.post(
        f"/v1/marketplace/gpu/{gpu}/confirm", json={"client_id": "alice"}, headers=auth(CLIENT2_KEY)
    )
    assert stranger.status_code == 403
    resp = client.post(
        f"/v1/marketplace/gpu/{gpu}/confirm",
        json={"client_id": CLIENT_KEY},
        headers=auth(CLIENT_KEY),
    )
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "confirmed",
        "gpu_id": gpu,
        "booking_id": booking_id,
        "client_id": "alice",
        "message": f"booking {booking_id} on GPU {gpu} confirmed",
    }
    with client.app.state.db.read() as session:  # type: ignore[attr-defined]
        row = session.get(Booking, booking_id)
        assert row is not None
        assert row.confirmed_at is not None
        assert CLIENT_KEY not in repr(row.__dict__)
