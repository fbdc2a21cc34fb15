"""Offers (sync, live figures, every filter), miner-offers, stats and bids; the legacy client."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from fastapi.testclient import TestClient

from tests.coordinator.market_support import credit, new_booking, online, register
from tests.support import (
    ADMIN_KEY,
    CLIENT2_KEY,
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    FakeClock,
    auth,
    live_coordinator,
)


def sync(client: TestClient) -> dict[str, Any]:
    resp = client.post("/v1/marketplace/sync-offers", headers=auth(ADMIN_KEY))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def offers(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    resp = client.get("/v1/marketplace/offers", params=params)
    assert resp.status_code == 200, resp.text
    body: list[dict[str, Any]] = resp.json()
    return body


def by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["provider"], row["gpu_model"]): row for row in rows}


def small_market(client: TestClient) -> dict[str, str]:
    """host-01: 2 x RTX 4090 (eu, 24 GiB, 1.0 and 1.5) + 1 x A100 (80 GiB, 3.0);
    host-02: 1 x RTX 4090 (us, 2.0). All online."""
    gpus = {
        "a": register(
            client, miner_key=MINER_KEY, name="RTX 4090", price="1.0", cuda_version="12.4"
        ),
        "b": register(
            client, miner_key=MINER_KEY, name="RTX 4090", price="1.5", cuda_version="12.4"
        ),
        "c": register(client, miner_key=MINER_KEY, name="A100", price="3.0", memory_gb=80),
        "d": register(client, miner_key=MINER2_KEY, name="RTX 4090", price="2.0"),
    }
    online(client, MINER_KEY, region="eu-west")
    online(client, MINER2_KEY, region="us-east")
    return gpus


def test_sync_offers_is_admin_only_and_idempotent(client: TestClient) -> None:
    small_market(client)
    assert client.post("/v1/marketplace/sync-offers", headers=auth(CLIENT_KEY)).status_code == 403
    assert client.post("/v1/marketplace/sync-offers").status_code == 401
    first = sync(client)
    assert (first["status"], first["created_offers"], len(first["offer_ids"])) == ("ok", 3, 3)
    assert all(i.startswith("off_") and len(i) == 20 for i in first["offer_ids"])
    second = sync(client)
    assert second["created_offers"] == 0
    assert sorted(second["offer_ids"]) == sorted(first["offer_ids"])
    rows = by_key(offers(client))
    assert len(rows) == 3
    rtx = rows[("host-01", "RTX 4090")]
    assert (rtx["gpu_count"], rtx["capacity"], rtx["status"]) == (2, 2, "open")
    assert (rtx["price"], rtx["price_per_hour"]) == ("1.00000000", "1.00000000")
    assert (rtx["region"], rtx["cuda_version"], rtx["gpu_memory_gb"]) == ("eu-west", "12.4", 24)
    assert len(rtx["attributes"]["gpu_ids"]) == 2


def test_offer_figures_are_live_between_syncs(client: TestClient, clock: FakeClock) -> None:
    gpus = small_market(client)
    sync(client)
    credit(client, "alice", "100")
    new_booking(client, gpus["c"], CLIENT_KEY, hours=1)
    rows = by_key(offers(client))
    a100 = rows[("host-01", "A100")]
    assert (a100["gpu_count"], a100["capacity"], a100["status"]) == (1, 0, "reserved")
    new_booking(client, gpus["a"], CLIENT_KEY, hours=1)
    rtx = by_key(offers(client))[("host-01", "RTX 4090")]
    assert (rtx["capacity"], rtx["status"]) == (1, "open")
    clock.advance(seconds=31)  # every miner silent past offline_after_s
    online(client, MINER2_KEY, region="us-east")
    rows = by_key(offers(client))
    assert {k: (r["gpu_count"], r["status"]) for k, r in rows.items()} == {
        ("host-01", "RTX 4090"): (0, "closed"),
        ("host-01", "A100"): (0, "closed"),
        ("host-02", "RTX 4090"): (1, "open"),
    }


def test_every_offer_filter_is_applied(client: TestClient) -> None:
    gpus = small_market(client)
    odd = register(client, miner_key=MINER2_KEY, name="Odd_100%", price="0.5", memory_gb=8)
    online(client, MINER2_KEY, region="us-east")
    sync(client)
    credit(client, "alice", "100")
    new_booking(client, gpus["c"], CLIENT_KEY, hours=1)

    def keys(**params: Any) -> set[tuple[str, str]]:
        return set(by_key(offers(client, **params)))

    assert len(keys()) == 4
    assert keys(status="reserved") == {("host-01", "A100")}
    assert keys(status="open") == keys() - {("host-01", "A100")}
    assert keys(status="closed") == set()
    assert keys(gpu_model="rtx") == {("host-01", "RTX 4090"), ("host-02", "RTX 4090")}
    assert keys(gpu_model="%") == {("host-02", "Odd_100%")}  # `%` is literal
    assert keys(gpu_model="d_1") == {("host-02", "Odd_100%")}
    assert keys(price_max="1") == {("host-01", "RTX 4090"), ("host-02", "Odd_100%")}
    assert keys(price_max=0.5) == {("host-02", "Odd_100%")}
    assert keys(memory_min=30) == {("host-01", "A100")}
    assert keys(region="US-EAST") == {("host-02", "RTX 4090"), ("host-02", "Odd_100%")}
    assert keys(gpu_model="rtx", region="eu-west", price_max="1.2", status="open") == {
        ("host-01", "RTX 4090")
    }
    assert len(offers(client, limit=2)) == 2
    assert len(offers(client, limit=2, offset=2)) == 2
    assert {o["id"] for o in offers(client, limit=2)}.isdisjoint(
        {o["id"] for o in offers(client, limit=2, offset=2)}
    )
    for bad in ({"status": "booked"}, {"limit": 501}, {"limit": 0}, {"price_max": "-1"}):
        assert client.get("/v1/marketplace/offers", params=bad).status_code == 422, bad
    assert odd


def test_miner_offers_carry_their_gpus(client: TestClient) -> None:
    gpus = small_market(client)
    sync(client)
    rows = client.get("/v1/marketplace/miner-offers", params={"provider": "host-01"}).json()
    assert {row["gpu_model"] for row in rows} == {"RTX 4090", "A100"}
    rtx = next(row for row in rows if row["gpu_model"] == "RTX 4090")
    assert [g["gpu_id"] for g in rtx["gpus"]] == [gpus["a"], gpus["b"]]
    assert {g["status"] for g in rtx["gpus"]} == {"available"}
    assert rtx["gpus"][0]["price_per_hour"] == "1.00000000"


def test_stats_from_current_data(client: TestClient) -> None:
    empty = client.get("/v1/marketplace/stats").json()
    assert empty == {
        "totalOffers": 0,
        "openCapacity": 0,
        "averagePrice": "0.00000000",
        "activeBids": 0,
    }
    gpus = small_market(client)
    sync(client)
    bid = {"provider": "host-01", "capacity": 1, "price": 0.5}
    assert (
        client.post("/v1/marketplace/bids", json=bid, headers=auth(CLIENT_KEY)).status_code == 202
    )
    stats = client.get("/v1/marketplace/stats").json()
    # open: host-01 RTX (cap 2, 1.0), host-01 A100 (cap 1, 3.0), host-02 RTX (cap 1, 2.0)
    assert stats == {
        "totalOffers": 3,
        "openCapacity": 4,
        "averagePrice": "2.00000000",
        "activeBids": 1,
    }
    credit(client, "alice", "100")
    new_booking(client, gpus["c"], CLIENT_KEY, hours=1)
    stats = client.get("/v1/marketplace/stats").json()
    assert (stats["openCapacity"], stats["averagePrice"]) == (3, "1.50000000")


def test_bids_202_and_visibility(client: TestClient) -> None:
    body = {"provider": "host-01", "capacity": 2, "price": "0.75", "notes": "night runs"}
    resp = client.post("/v1/marketplace/bids", json=body, headers=auth(CLIENT_KEY))
    assert resp.status_code == 202
    bid = resp.json()
    assert bid["id"].startswith("bid_")
    assert (bid["status"], bid["price"], bid["client_id"]) == ("pending", "0.75000000", "alice")
    assert (
        client.post("/v1/marketplace/bids", json=body, headers=auth(MINER_KEY)).status_code == 403
    )
    assert client.post("/v1/marketplace/bids", json=body).status_code == 401
    for bad in ({**body, "capacity": 0}, {**body, "price": 0}, {**body, "provider": ""}):
        assert (
            client.post("/v1/marketplace/bids", json=bad, headers=auth(CLIENT_KEY)).status_code
            == 422
        )

    def ids(key: str, **params: Any) -> list[str]:
        resp = client.get("/v1/marketplace/bids", params=params, headers=auth(key))
        assert resp.status_code == 200
        return [b["id"] for b in resp.json()]

    assert ids(CLIENT_KEY) == [bid["id"]]
    assert ids(CLIENT2_KEY) == []
    assert ids(ADMIN_KEY) == [bid["id"]]
    assert ids(MINER_KEY) == [bid["id"]]  # addressed to host-01
    assert ids(MINER2_KEY) == []
    assert ids(CLIENT_KEY, status="accepted") == []
    assert ids(CLIENT_KEY, provider="host-02") == []
    assert client.get("/v1/marketplace/bids").status_code == 401
    one = client.get(f"/v1/marketplace/bids/{bid['id']}", headers=auth(CLIENT_KEY))
    assert one.json() == bid
    assert (
        client.get(f"/v1/marketplace/bids/{bid['id']}", headers=auth(CLIENT2_KEY)).status_code
        == 403
    )
    missing = client.get("/v1/marketplace/bids/bid_0000000000000000", headers=auth(CLIENT_KEY))
    assert (missing.status_code, missing.json()) == (404, {"detail": "bid not found"})


def test_legacy_client_bid_submit_offers_list_and_pricing(db_url: str) -> None:
    """The exact requests of `aitbc marketplace bid submit | offers list | pricing MODEL`
    (v0.2.0): a fresh httpx client per command, `X-Api-Key` always sent ("" when unset)."""
    with live_coordinator(db_url) as base:
        with httpx.Client(base_url=base) as setup:
            register(setup, miner_key=MINER_KEY, name="RTX 4090", price="1.25", region="eu-west")
            register(setup, miner_key=MINER2_KEY, name="A100", price="3", memory_gb=80)
            online(setup, MINER_KEY, region="eu-west")
            online(setup, MINER2_KEY)
            assert (
                setup.post("/v1/marketplace/sync-offers", headers=auth(ADMIN_KEY)).status_code
                == 200
            )

        # aitbc --api-key CLIENT marketplace bid submit --provider host-01 --capacity 2 --price 0.5
        with httpx.Client() as cli:
            resp = cli.post(
                f"{base}/v1/marketplace/bids",
                json={"provider": "host-01", "capacity": 2, "price": 0.5},
                headers={"Content-Type": "application/json", "X-Api-Key": CLIENT_KEY},
            )
        assert resp.status_code == 202  # the client accepts nothing else
        assert resp.json()["id"].startswith("bid_")

        # aitbc marketplace offers list --gpu-model rtx --price-max 2 --memory-min 16 --limit 20
        with httpx.Client() as cli:
            resp = cli.get(
                f"{base}/v1/marketplace/offers",
                params={
                    "limit": 20,
                    "status": "open",
                    "gpu_model": "rtx",
                    "price_max": 2.0,
                    "memory_min": 16,
                    "region": "eu-west",
                },
                headers={"X-Api-Key": ""},
            )
        assert resp.status_code == 200
        assert [(o["provider"], o["gpu_model"]) for o in resp.json()] == [("host-01", "RTX 4090")]

        # aitbc marketplace pricing "RTX 4090"
        with httpx.Client() as cli:
            resp = cli.get(
                f"{base}/v1/marketplace/pricing/{quote('RTX 4090')}", headers={"X-Api-Key": ""}
            )
        assert resp.status_code == 200
        body = resp.json()
        assert body["model"] == "RTX 4090"
        assert body["static_pricing"]["total_gpus"] == 1
        # 1 online, none booked: the idle floor 0.8 x 1.25
        assert body["individual_gpu_pricing"][0]["dynamic_price"] == "1.00000000"
        assert body["pricing_timestamp"].endswith("Z")
