"""The AITBC legacy CLI (`aitbc marketplace gpu ...`, v0.2.0 flavour) over real HTTP.

Each request is built the way that client builds it (docs/api.md): a fresh
`httpx.Client` per command, `X-Api-Key` on every call (`""` when no key is configured),
`X-Miner-ID: default` on register, query values as the client passes them, `gpu_id` and
`total_cost` in the book body, `{"client_id": <its key>}` on confirm, no body at all on release,
`comment: null` on review, `force` always on delete. The status codes asserted are the ones
the client accepts: 201 on register/book/review (v0.1 wants exactly 201), exactly 200 elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.coordinator.market_support import credit
from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, live_coordinator

LEGACY_GPU_KEYS = (
    "id", "miner_id", "model", "memory_gb", "cuda_version", "region", "price_per_hour", "status",
    "capabilities", "created_at", "average_rating", "total_reviews",
)  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("legacy") / "coordinator.db"
    # These tests are about the wire, on a real clock: a review right from the first second
    # (the rule itself, review_min_run_s, is tested in market/test_reviews_orders.py).
    with live_coordinator(f"sqlite:///{path}", env={"COORDINATOR_REVIEW_MIN_RUN_S": "0"}) as url:
        with httpx.Client(base_url=url) as admin:
            credit(admin, "alice", "100")
        yield url


def cli(method: str, url: str, *, key: str | None, **kwargs: Any) -> httpx.Response:
    """One CLI command: a fresh client, 5 s timeout, X-Api-Key always present."""
    headers = {"X-Api-Key": key or "", **kwargs.pop("headers", {})}
    with httpx.Client() as client:
        return client.request(method, url, headers=headers, timeout=5, **kwargs)


def register(base: str, name: str = "NVIDIA GeForce RTX 4090") -> str:
    resp = cli(
        "POST",
        f"{base}/v1/marketplace/gpu/register",
        key=MINER_KEY,
        headers={"Content-Type": "application/json", "X-Miner-ID": "default"},
        json={
            "gpu": {
                "name": name,
                "memory_gb": 24,
                "cuda_cores": 16384,
                "compute_capability": "8.9",
                "price_per_hour": 0.5,
                "description": "test rig",
            }
        },
    )
    assert resp.status_code == 201, resp.text
    gpu_id: str = resp.json()["gpu_id"]
    return gpu_id


def heartbeat(base: str) -> None:
    """What the agent does: the legacy CLI registers GPUs, the agent keeps them online."""
    resp = cli("POST", f"{base}/v1/miners/register", key=MINER_KEY, json={})
    assert resp.status_code == 200


def test_legacy_gpu_flow(base: str) -> None:
    gpu = register(base)
    heartbeat(base)

    listed = cli(
        "GET",
        f"{base}/v1/marketplace/gpu/list",
        key=None,
        params={
            "limit": 20,
            "available": "true",
            "model": "4090",
            "memory_min": 16,
            "price_max": 1.0,
        },
    )
    assert listed.status_code == 200
    assert isinstance(listed.json(), list)
    row = next(g for g in listed.json() if g["id"] == gpu)
    assert set(LEGACY_GPU_KEYS) <= row.keys()
    assert row["status"] == "available"
    assert row["miner_id"] == "host-01"

    shown = cli("GET", f"{base}/v1/marketplace/gpu/{gpu}", key=None)
    assert shown.status_code == 200
    assert shown.json()["id"] == gpu

    booked = cli(
        "POST",
        f"{base}/v1/marketplace/gpu/{gpu}/book",
        key=CLIENT_KEY,
        headers={"Content-Type": "application/json"},
        json={"gpu_id": gpu, "duration_hours": 2.0, "total_cost": 5.0},
    )
    assert booked.status_code == 201, booked.text
    booking_id = booked.json()["booking_id"]

    confirmed = cli(
        "POST",
        f"{base}/v1/marketplace/gpu/{gpu}/confirm",
        key=CLIENT_KEY,
        headers={"Content-Type": "application/json"},
        json={"client_id": CLIENT_KEY},
    )
    assert confirmed.status_code == 200
    assert confirmed.json()["client_id"] == "alice"  # the key in the body is never an identity
    assert CLIENT_KEY not in confirmed.text

    release = httpx.Request(
        "POST", f"{base}/v1/marketplace/gpu/{gpu}/release", headers={"X-Api-Key": CLIENT_KEY}
    )
    assert "content-type" not in release.headers
    assert release.read() == b""
    with httpx.Client() as client:
        released = client.send(release)
    assert released.status_code == 200
    assert released.json()["status"] == "released"
    assert released.json()["booking_id"] == booking_id

    reviewed = cli(
        "POST",
        f"{base}/v1/marketplace/gpu/{gpu}/reviews",
        key=CLIENT_KEY,
        headers={"Content-Type": "application/json"},
        json={"rating": 5, "comment": None},
    )
    assert reviewed.status_code == 201, reviewed.text

    reviews = cli("GET", f"{base}/v1/marketplace/gpu/{gpu}/reviews", key=None, params={"limit": 10})
    assert reviews.status_code == 200
    assert reviews.json()["reviews"][0]["comment"] is None

    orders = cli("GET", f"{base}/v1/marketplace/orders", key=CLIENT_KEY, params={"limit": 10})
    assert orders.status_code == 200
    assert isinstance(orders.json(), list)
    assert orders.json()[0]["order_id"] == booking_id
    assert orders.json()[0]["status"] == "released"

    deleted = cli(
        "DELETE", f"{base}/v1/marketplace/gpu/{gpu}", key=MINER_KEY, params={"force": False}
    )
    assert deleted.status_code == 200
    assert deleted.json() == {"status": "deleted", "gpu_id": gpu}


def test_legacy_reviews_limit_is_obeyed(base: str) -> None:
    gpu = register(base, name="NVIDIA L4")
    heartbeat(base)
    for rating in (3, 4, 5):
        booked = cli(
            "POST",
            f"{base}/v1/marketplace/gpu/{gpu}/book",
            key=CLIENT_KEY,
            json={"gpu_id": gpu, "duration_hours": 0.5, "total_cost": 1.0},
        )
        assert booked.status_code == 201, booked.text
        assert (
            cli("POST", f"{base}/v1/marketplace/gpu/{gpu}/release", key=CLIENT_KEY).status_code
            == 200
        )
        posted = cli(
            "POST",
            f"{base}/v1/marketplace/gpu/{gpu}/reviews",
            key=CLIENT_KEY,
            json={"rating": rating, "comment": None},
        )
        assert posted.status_code == 201
    resp = cli("GET", f"{base}/v1/marketplace/gpu/{gpu}/reviews", key=None, params={"limit": 2})
    assert resp.status_code == 200
    assert len(resp.json()["reviews"]) == 2
    assert resp.json()["total_reviews"] == 3
    assert resp.json()["average_rating"] == 4.0


def test_legacy_release_of_a_free_gpu_and_forced_unregister(base: str) -> None:
    gpu = register(base, name="NVIDIA A10")
    heartbeat(base)
    free = cli("POST", f"{base}/v1/marketplace/gpu/{gpu}/release", key=CLIENT_KEY)
    assert free.status_code == 200
    assert free.json()["status"] == "already_available"
    booked = cli(
        "POST",
        f"{base}/v1/marketplace/gpu/{gpu}/book",
        key=CLIENT_KEY,
        json={"gpu_id": gpu, "duration_hours": 1.0, "total_cost": 2.0},
    )
    assert booked.status_code == 201
    kept = cli("DELETE", f"{base}/v1/marketplace/gpu/{gpu}", key=MINER_KEY, params={"force": False})
    assert kept.status_code == 409
    gone = cli("DELETE", f"{base}/v1/marketplace/gpu/{gpu}", key=MINER_KEY, params={"force": True})
    assert gone.status_code == 200
    orders = cli("GET", f"{base}/v1/marketplace/orders", key=ADMIN_KEY, params={"limit": 10}).json()
    order = next(o for o in orders if o["booking_id"] == booked.json()["booking_id"])
    assert order["status"] == "cancelled_by_provider"
    total, refund = Decimal(order["total_cost"]), Decimal(order["refund"])
    assert total * Decimal("0.999") < refund <= total  # all the unused time (ms were used)
