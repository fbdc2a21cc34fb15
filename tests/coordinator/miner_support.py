"""Helpers for the miner-protocol tests: an online GPU, money, a booking, over the HTTP API.

Each helper takes a `post`/`get`-capable client: the in-process TestClient or an httpx.Client
pointed at a live coordinator (base_url set), so the same steps drive both.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, auth


class Response(Protocol):
    status_code: int

    def json(self) -> Any: ...


class Client(Protocol):
    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...

    def delete(self, url: str, **kwargs: Any) -> Any: ...


def ok(resp: Response, status: int = 200) -> Any:
    assert resp.status_code == status, (resp.status_code, resp.json())
    return resp.json()


def online_gpu(
    client: Client, *, key: str = MINER_KEY, uuid: str = "GPU-test-0", price: str = "0.50"
) -> str:
    """Register the miner and one GPU, heartbeat once: the GPU is `available`. Returns its id."""
    ok(client.post("/v1/miners/register", json={}, headers=auth(key)))
    gpu = {"name": "NVIDIA H100 80GB HBM3", "memory_gb": 80, "price_per_hour": price, "uuid": uuid}
    resp = client.post("/v1/marketplace/gpu/register", json={"gpu": gpu}, headers=auth(key))
    gpu_id: str = ok(resp, resp.status_code if resp.status_code in (200, 201) else 201)["gpu_id"]
    heartbeat(client, key=key, gpus=[{"gpu_id": gpu_id, "uuid": uuid}])
    return gpu_id


def heartbeat(client: Client, *, key: str = MINER_KEY, **body: Any) -> Any:
    return ok(client.post("/v1/miners/heartbeat", json=body, headers=auth(key)))


def credit(client: Client, subject: str = "alice", amount: str = "100") -> None:
    ok(
        client.post(
            f"/v1/admin/accounts/{subject}/credit", json={"amount": amount}, headers=auth(ADMIN_KEY)
        )
    )


def book(client: Client, gpu_id: str, *, hours: float = 1.0, key: str = CLIENT_KEY) -> Any:
    resp = client.post(
        f"/v1/marketplace/gpu/{gpu_id}/book", json={"duration_hours": hours}, headers=auth(key)
    )
    return ok(resp, 201)


def account(client: Client, key: str) -> dict[str, Decimal]:
    me = ok(client.get("/v1/accounts/me", headers=auth(key)))
    return {bucket: Decimal(me[bucket]) for bucket in ("balance", "escrowed", "staked")}


def gpu_status(client: Client, gpu_id: str) -> str:
    status: str = ok(client.get(f"/v1/marketplace/gpu/{gpu_id}"))["status"]
    return status


def ack(
    client: Client,
    booking_id: str,
    generation: int,
    state: str,
    *,
    key: str = MINER_KEY,
    detail: str | None = None,
) -> Any:
    return client.post(
        f"/v1/miners/leases/{booking_id}/ack",
        json={"generation": generation, "state": state, "detail": detail},
        headers=auth(key),
    )
