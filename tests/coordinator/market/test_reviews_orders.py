"""Reviews (renters only, one per booking, exact aggregates) and orders scoped to the caller."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from tests.coordinator.market_support import book, online, register
from tests.support import (
    ADMIN_KEY,
    CLIENT2_KEY,
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    FakeClock,
    auth,
)


def review(client: TestClient, gpu: str, key: str, rating: Any, comment: Any = None) -> Any:
    return client.post(
        f"/v1/marketplace/gpu/{gpu}/reviews",
        json={"rating": rating, "comment": comment},
        headers=auth(key),
    )


def ran_long_enough_to_review(client: TestClient, clock: FakeClock) -> None:
    """Let the booking run `review_min_run_s` (10 minutes), its miner still heartbeating."""
    clock.advance(minutes=10)
    online(client)


def release(client: TestClient, gpu: str, key: str = CLIENT_KEY) -> None:
    assert client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=auth(key)).status_code == 200


def test_only_renters_review_once_per_booking(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    assert review(client, gpu, CLIENT_KEY, 5).status_code == 403  # never booked it
    assert review(client, gpu, MINER_KEY, 5).status_code == 403  # not a client
    assert review(client, "gpu_0000000000000000", CLIENT_KEY, 5).status_code == 404
    first_booking = book(client, gpu, CLIENT_KEY).json()["booking_id"]
    clock.advance(minutes=10)  # review_min_run_s: the booking has run long enough
    online(client)
    release(client, gpu)
    first = review(client, gpu, CLIENT_KEY, 4, None)
    assert first.status_code == 201
    body = first.json()
    assert body["status"] == "review_added"
    assert body["gpu_id"] == gpu
    assert body["review_id"].startswith("rv_")
    assert body["booking_id"] == first_booking
    assert (body["average_rating"], body["total_reviews"]) == (4.0, 1)
    dup = review(client, gpu, CLIENT_KEY, 1)
    assert dup.status_code == 409
    clock.advance(minutes=1)
    online(client)
    assert book(client, gpu, CLIENT_KEY).status_code == 201
    clock.advance(minutes=10)
    online(client)
    release(client, gpu)
    second = review(client, gpu, CLIENT_KEY, 5, "fast")
    assert second.status_code == 201
    assert (second.json()["average_rating"], second.json()["total_reviews"]) == (4.5, 2)


def test_a_review_right_takes_a_booking_that_ran_long_enough_or_completed(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    book(client, gpu, CLIENT_KEY, hours=1)
    clock.advance(minutes=9)  # a minute short of review_min_run_s
    online(client)
    early = review(client, gpu, CLIENT_KEY, 1)
    assert early.status_code == 403
    assert "600 s or completed" in early.json()["detail"]
    release(client, gpu)  # released early: it never earns the right
    clock.advance(minutes=5)
    online(client)
    assert review(client, gpu, CLIENT_KEY, 1).status_code == 403
    # The shortest booking there is (1 minute) that runs to its end does earn it.
    assert book(client, gpu, CLIENT_KEY, hours=1 / 60).status_code == 201
    clock.advance(minutes=2)
    online(client)
    done = review(client, gpu, CLIENT_KEY, 5)
    assert done.status_code == 201, done.text
    assert done.json()["total_reviews"] == 1


BAD_REVIEWS: list[dict[str, Any]] = [
    {"rating": 0},
    {"rating": 6},
    {"rating": "five"},
    {"comment": "no rating"},
    {"rating": 3, "comment": "c" * 2001},
    {"rating": 3, "comment": 12},
    {"rating": 3, "comment": "nul\x00"},
]


def test_bad_reviews_are_422(client: TestClient, gpu: str) -> None:
    book(client, gpu, CLIENT_KEY)
    for body in BAD_REVIEWS:
        resp = client.post(
            f"/v1/marketplace/gpu/{gpu}/reviews", json=body, headers=auth(CLIENT_KEY)
        )
        assert resp.status_code == 422, body


def test_reviews_are_newest_first_and_limit_is_obeyed(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    for rating in (1, 2, 3, 4, 5):
        assert book(client, gpu, CLIENT_KEY, hours=1).status_code == 201
        ran_long_enough_to_review(client, clock)
        release(client, gpu)
        assert review(client, gpu, CLIENT_KEY, rating, f"r{rating}").status_code == 201
        clock.advance(seconds=10)
        online(client)
    resp = client.get(f"/v1/marketplace/gpu/{gpu}/reviews", params={"limit": "2"})
    assert resp.status_code == 200
    body = resp.json()
    assert (body["gpu_id"], body["average_rating"], body["total_reviews"]) == (gpu, 3.0, 5)
    assert [r["rating"] for r in body["reviews"]] == [5, 4]
    assert body["reviews"][0]["user"] == "alice"
    assert body["reviews"][0]["comment"] == "r5"
    assert body["reviews"][0]["date"].endswith("Z")
    page = client.get(f"/v1/marketplace/gpu/{gpu}/reviews", params={"limit": 2, "offset": 4})
    assert [r["rating"] for r in page.json()["reviews"]] == [1]
    assert (
        client.get(f"/v1/marketplace/gpu/{gpu}/reviews", params={"limit": 501}).status_code == 422
    )
    assert client.get("/v1/marketplace/gpu/gpu_nope/reviews").status_code == 404
    listed = client.get("/v1/marketplace/gpu/list").json()[0]
    assert (listed["average_rating"], listed["total_reviews"]) == (3.0, 5)


def test_concurrent_reviews_keep_exact_aggregates(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    for _ in range(6):
        assert book(client, gpu, CLIENT_KEY, hours=1).status_code == 201
        ran_long_enough_to_review(client, clock)
        release(client, gpu)
        clock.advance(seconds=1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda r: review(client, gpu, CLIENT_KEY, r).status_code, [5] * 8))
    assert sorted(codes) == [201] * 6 + [409] * 2
    body = client.get(f"/v1/marketplace/gpu/{gpu}/reviews", params={"limit": 100}).json()
    assert body["total_reviews"] == 6
    assert len(body["reviews"]) == 6
    assert body["average_rating"] == 5.0


def test_orders_are_scoped_to_the_caller(client: TestClient, clock: FakeClock, gpu: str) -> None:
    other = register(client, miner_key=MINER2_KEY, name="L4", price="0.25")
    online(client, MINER2_KEY)
    mine = book(client, gpu, CLIENT_KEY, hours=2, job_id="job-1").json()["booking_id"]
    clock.advance(seconds=1)
    theirs = book(client, other, CLIENT2_KEY, hours=1).json()["booking_id"]

    def order_ids(key: str, **params: Any) -> list[str]:
        resp = client.get("/v1/marketplace/orders", params=params, headers=auth(key))
        assert resp.status_code == 200, resp.text
        assert isinstance(resp.json(), list)
        return [o["order_id"] for o in resp.json()]

    assert order_ids(CLIENT_KEY) == [mine]
    assert order_ids(CLIENT2_KEY) == [theirs]
    assert order_ids(MINER_KEY) == [mine]
    assert order_ids(MINER2_KEY) == [theirs]
    assert order_ids(ADMIN_KEY) == [theirs, mine]  # newest first
    assert order_ids(ADMIN_KEY, limit=1) == [theirs]
    assert order_ids(ADMIN_KEY, limit=1, offset=1) == [mine]
    assert client.get("/v1/marketplace/orders").status_code == 401
    assert client.get("/v1/marketplace/orders", headers={"X-Api-Key": ""}).status_code == 401
    order = client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)).json()[0]
    assert order == {
        "order_id": mine,
        "booking_id": mine,
        "gpu_id": gpu,
        "gpu_model": "NVIDIA RTX 4090",
        "miner_id": "host-01",
        "client_id": "alice",
        "duration_hours": 2.0,
        "price_per_hour": order["price_per_hour"],
        "total_cost": order["total_cost"],
        "refund": None,
        "status": "active",
        "lease_state": "pending",
        "created_at": "2026-11-26T12:00:00.000000Z",
        "start_time": "2026-11-26T12:00:00.000000Z",
        "end_time": "2026-11-26T14:00:00.000000Z",
        "ended_at": None,
        "job_id": "job-1",
    }


def test_orders_filter_by_status_including_derived_completion(
    client: TestClient, clock: FakeClock, gpu: str
) -> None:
    short = book(client, gpu, CLIENT_KEY, hours=1).json()["booking_id"]
    clock.advance(hours=1)
    online(client)
    assert (
        client.get(
            "/v1/marketplace/orders", params={"status": "active"}, headers=auth(CLIENT_KEY)
        ).json()
        == []
    )
    done = client.get(
        "/v1/marketplace/orders", params={"status": "completed"}, headers=auth(CLIENT_KEY)
    ).json()
    assert [o["order_id"] for o in done] == [short]
    live = book(client, gpu, CLIENT_KEY, hours=1).json()["booking_id"]
    active = client.get(
        "/v1/marketplace/orders", params={"status": "active"}, headers=auth(CLIENT_KEY)
    ).json()
    assert [o["order_id"] for o in active] == [live]
    bad = client.get(
        "/v1/marketplace/orders", params={"status": "cancelled"}, headers=auth(CLIENT_KEY)
    )
    assert bad.status_code == 422
    assert (
        client.get(
            "/v1/marketplace/orders", params={"limit": 501}, headers=auth(CLIENT_KEY)
        ).status_code
        == 422
    )
