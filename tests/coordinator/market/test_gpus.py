"""GPU register, list, details and delete (docs/api.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.coordinator.market_support import account, book, credit, details, online, register
from tests.support import (
    ADMIN_KEY,
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    FakeClock,
    auth,
)

GPU_KEYS = {
    "id", "miner_id", "model", "memory_gb", "cuda_version", "region", "price_per_hour", "status",
    "capabilities", "created_at", "average_rating", "total_reviews", "uuid", "memory_mib",
    "compute_capability", "driver_version", "health", "health_reason", "last_heartbeat_at",
    "metrics",
}  # fmt: skip


def post_register(client: TestClient, gpu: dict[str, Any], key: str = MINER_KEY) -> Any:
    return client.post("/v1/marketplace/gpu/register", json={"gpu": gpu}, headers=auth(key))


def gpu_list(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    resp = client.get("/v1/marketplace/gpu/list", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body, list)
    return body


def test_register_with_uuid_is_idempotent_and_updates_specs(client: TestClient) -> None:
    spec = {
        "name": "NVIDIA H100 80GB HBM3",
        "memory_gb": 79.6,
        "price_per_hour": "2.5",
        "uuid": "GPU-aaaa",
        "memory_mib": 81559,
        "compute_capability": "9.0",
        "cuda_version": "12.4",
        "driver_version": "550.54",
        "region": "eu-west",
        "capabilities": ["llm", "training"],
        "cuda_cores": 16896,
        "miner_id": "someone-else",
        "unknown_key": {"ignored": True},
    }
    first = post_register(client, spec)
    assert first.status_code == 201
    assert first.json()["created"] is True
    assert first.json()["status"] == "registered"
    assert first.json()["price_per_hour"] == "2.50000000"
    again = post_register(client, {**spec, "price_per_hour": 3})
    assert again.status_code == 200
    assert again.json()["gpu_id"] == first.json()["gpu_id"]
    assert again.json()["created"] is False
    shown = details(client, first.json()["gpu_id"])
    assert shown.keys() >= GPU_KEYS
    assert shown["miner_id"] == "host-01"  # the key's miner, never the body's
    assert shown["price_per_hour"] == "3.00000000"
    assert shown["memory_gb"] == 80
    assert shown["capabilities"] == ["llm", "training"]
    assert shown["status"] == "offline"  # registered by hand: offline until the miner speaks
    assert shown["current_booking"] is None
    other_miner = post_register(client, spec, key=MINER2_KEY)
    assert other_miner.status_code == 201
    assert other_miner.json()["gpu_id"] != first.json()["gpu_id"]


def test_register_without_uuid_creates_a_new_gpu_each_time(client: TestClient) -> None:
    spec = {"name": "RTX 3090", "memory_gb": 24, "price_per_hour": 0.3}
    ids = {post_register(client, spec).json()["gpu_id"] for _ in range(3)}
    assert len(ids) == 3
    for gpu_id in ids:
        assert gpu_id.startswith("gpu_")
        assert len(gpu_id) == 20


def test_register_needs_a_miner_key_bound_to_x_miner_id(client: TestClient) -> None:
    spec = {"gpu": {"name": "A", "memory_gb": 1, "price_per_hour": 1}}
    url = "/v1/marketplace/gpu/register"
    assert client.post(url, json=spec).status_code == 401
    assert client.post(url, json=spec, headers={"X-Api-Key": ""}).status_code == 401
    assert client.post(url, json=spec, headers=auth(CLIENT_KEY)).status_code == 403
    wrong = {**auth(MINER_KEY), "X-Miner-ID": "host-02"}
    assert client.post(url, json=spec, headers=wrong).status_code == 403
    ok = client.post(url, json=spec, headers={**auth(MINER_KEY), "X-Miner-ID": "default"})
    assert ok.status_code == 201


BAD_GPUS: list[dict[str, Any]] = [
    {"name": "A", "memory_gb": 1, "price_per_hour": 0},
    {"name": "A", "memory_gb": 1, "price_per_hour": "-1"},
    {"name": "A", "memory_gb": 1, "price_per_hour": "abc"},
    {"name": "A", "memory_gb": 1, "price_per_hour": "0.000000001"},
    {"name": "A", "memory_gb": 1},
    {"name": "A", "price_per_hour": 1},
    {"memory_gb": 1, "price_per_hour": 1},
    {"name": "", "memory_gb": 1, "price_per_hour": 1},
    {"name": "x" * 129, "memory_gb": 1, "price_per_hour": 1},
    {"name": "A\x00B", "memory_gb": 1, "price_per_hour": 1},
    {"name": "A", "memory_gb": -1, "price_per_hour": 1},
    {"name": "A", "memory_gb": "NaN", "price_per_hour": 1},
    {"name": "A", "memory_gb": "lots", "price_per_hour": 1},
    {"name": "A", "memory_gb": 1, "price_per_hour": 1, "description": "d" * 2001},
    {"name": "A", "memory_gb": 1, "price_per_hour": 1, "region": "r" * 65},
    {"name": "A", "memory_gb": 1, "price_per_hour": 1, "capabilities": ["c"] * 65},
    {"name": "A", "memory_gb": 1, "price_per_hour": 1, "capabilities": ["c" * 65]},
    {"name": "A", "memory_gb": 1, "price_per_hour": 1, "uuid": "u" * 129},
]


def test_register_rejects_bad_input_with_422(client: TestClient) -> None:
    for gpu in BAD_GPUS:
        assert post_register(client, gpu).status_code == 422, gpu
    for body in ({}, {"gpu": None}, {"gpu": []}, []):
        resp = client.post("/v1/marketplace/gpu/register", json=body, headers=auth(MINER_KEY))
        assert resp.status_code == 422, body
    assert client.get("/v1/marketplace/gpu/list").json() == []


def test_register_accepts_the_limits_exactly(client: TestClient) -> None:
    gpu = {
        "name": "n" * 128,
        "memory_gb": 0,
        "price_per_hour": "0.00000001",
        "description": "d" * 2000,
        "region": "r" * 64,
        "capabilities": ["c" * 64] * 64,
    }
    assert post_register(client, gpu).status_code == 201


def test_status_follows_the_miner_heartbeat(client: TestClient, clock: FakeClock) -> None:
    gpu = register(client)
    assert details(client, gpu)["status"] == "offline"
    online(client)
    shown = details(client, gpu)
    assert shown["status"] == "available"
    assert shown["last_heartbeat_at"] == "2026-11-26T12:00:00.000000Z"
    clock.advance(seconds=30)
    assert details(client, gpu)["status"] == "available"
    clock.advance(seconds=1)
    assert details(client, gpu)["status"] == "offline"
    hb = client.post(
        "/v1/miners/heartbeat",
        json={"gpus": [{"gpu_id": gpu, "health": "lost", "temperature_c": 91.5}]},
        headers=auth(MINER_KEY),
    )
    assert hb.status_code == 200
    shown = details(client, gpu)
    assert shown["status"] == "offline"
    assert shown["health"] == "lost"
    assert shown["metrics"]["temperature_c"] == 91.5


@pytest.fixture
def fleet(client: TestClient) -> dict[str, str]:
    """Five GPUs on two miners; all online, one booked."""
    ids = {
        "h100": register(client, name="NVIDIA H100 80GB", price="2.0", memory_gb=80, region="eu"),
        "a100": register(client, name="NVIDIA A100_40GB", price="1.0", memory_gb=40, region="EU"),
        "4090": register(client, name="GeForce RTX 4090", price="0.5", memory_gb=24, region="us"),
        "4090b": register(client, name="GeForce RTX 4090", price="0.5", memory_gb=24),
        "l4": register(client, miner_key=MINER2_KEY, name="NVIDIA L4 100%", price="0.25"),
    }
    online(client)
    online(client, MINER2_KEY)
    credit(client, "alice", "100")
    assert book(client, ids["a100"], CLIENT_KEY).status_code == 201
    return ids


def test_list_is_a_bare_array_in_price_then_id_order(
    client: TestClient, fleet: dict[str, str]
) -> None:
    items = gpu_list(client)
    assert len(items) == 5
    assert [(Decimal(g["price_per_hour"]), g["id"]) for g in items] == sorted(
        (Decimal(g["price_per_hour"]), g["id"]) for g in items
    )
    assert all(g.keys() >= GPU_KEYS for g in items)
    assert items[0]["id"] == fleet["l4"]


def test_list_filters(client: TestClient, fleet: dict[str, str]) -> None:
    def ids(**params: Any) -> set[str]:
        return {g["id"] for g in gpu_list(client, **params)}

    everything = set(fleet.values())
    assert ids(available="true") == everything - {fleet["a100"]}
    assert ids(available="false") == {fleet["a100"]}
    assert ids(status="booked") == {fleet["a100"]}
    assert ids(model="rtx 4090") == {fleet["4090"], fleet["4090b"]}
    assert ids(model="a100_") == {fleet["a100"]}
    assert ids(model="A100%") == set()  # % is literal, not a wildcard
    assert ids(model="_") == {fleet["a100"]}  # so is _
    assert ids(model="100%") == {fleet["l4"]}
    assert ids(memory_min="40") == {fleet["h100"], fleet["a100"]}
    assert ids(price_max="0.5") == {fleet["4090"], fleet["4090b"], fleet["l4"]}
    assert ids(region="eu") == {fleet["h100"], fleet["a100"]}
    assert ids(miner_id="host-02") == {fleet["l4"]}
    assert ids(available="true", memory_min="24", price_max="1", limit="20") == {
        fleet["4090"],
        fleet["4090b"],
        fleet["l4"],
    }
    assert ids(available="true", memory_min="25", price_max="2") == {fleet["h100"]}


def test_list_pages_with_limit_and_offset(client: TestClient, fleet: dict[str, str]) -> None:
    full = [g["id"] for g in gpu_list(client)]
    assert [g["id"] for g in gpu_list(client, limit=2)] == full[:2]
    assert [g["id"] for g in gpu_list(client, limit=2, offset=2)] == full[2:4]
    assert gpu_list(client, offset=5) == []


BAD_LIST_QUERIES: list[dict[str, Any]] = [
    {"limit": 0},
    {"limit": 501},
    {"offset": -1},
    {"status": "busy"},
    {"available": "maybe"},
    {"memory_min": "NaN"},
    {"memory_min": "-1"},
    {"price_max": "abc"},
    {"price_max": "-1"},
    {"model": "m" * 129},
    {"region": "r" * 65},
    {"model": "a\x00b"},
]


def test_list_rejects_bad_queries_with_422(client: TestClient) -> None:
    for params in BAD_LIST_QUERIES:
        resp = client.get("/v1/marketplace/gpu/list", params=params)
        assert resp.status_code == 422, params


def test_details_of_an_unknown_gpu_is_404(client: TestClient) -> None:
    for gpu_id in ("gpu_0000000000000000", "x" * 300, "a b", "%00"):
        resp = client.get(f"/v1/marketplace/gpu/{gpu_id}")
        assert resp.status_code == 404, gpu_id
        assert "not found" in resp.json()["detail"]


def test_delete_checks_owner_and_booking(
    client: TestClient, clock: FakeClock, fleet: dict[str, str]
) -> None:
    url = f"/v1/marketplace/gpu/{fleet['a100']}"
    assert (
        client.delete(url, params={"force": "false"}, headers=auth(MINER2_KEY)).status_code == 403
    )
    assert (
        client.delete(url, params={"force": "false"}, headers=auth(CLIENT_KEY)).status_code == 403
    )
    booked = client.delete(url, params={"force": "false"}, headers=auth(MINER_KEY))
    assert booked.status_code == 409
    assert details(client, fleet["a100"])["status"] == "booked"
    total = Decimal(
        client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)).json()[0]["total_cost"]
    )
    clock.advance(hours=1)
    forced = client.delete(url, params={"force": "true"}, headers=auth(MINER_KEY))
    assert forced.status_code == 200
    assert forced.json() == {"status": "deleted", "gpu_id": fleet["a100"]}
    assert client.get(url).status_code == 404
    assert fleet["a100"] not in {g["id"] for g in gpu_list(client)}
    order = client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)).json()[0]
    assert order["gpu_id"] == fleet["a100"]  # history survives the delete
    assert order["gpu_model"] == "NVIDIA A100_40GB"
    assert order["status"] == "cancelled_by_provider"
    refund = (total * 3 / 4).quantize(Decimal("0.00000001"))
    assert Decimal(order["refund"]) == refund
    assert account(client, CLIENT_KEY)["balance"] == 100 - total + refund
    assert client.delete(url, params={"force": "true"}, headers=auth(MINER_KEY)).status_code == 404


def test_admin_deletes_any_gpu_and_a_deleted_uuid_registers_anew(client: TestClient) -> None:
    spec = {"name": "L40S", "memory_gb": 48, "price_per_hour": 1, "uuid": "GPU-l40s"}
    first = post_register(client, spec).json()["gpu_id"]
    resp = client.delete(
        f"/v1/marketplace/gpu/{first}", params={"force": "false"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status_code == 200
    again = post_register(client, spec)
    assert again.status_code == 201
    assert again.json()["gpu_id"] != first
