"""Helpers for the marketplace tests: they drive the API only (TestClient or httpx.Client)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from coordinator_stub.ledger import conservation
from tests.support import ADMIN_KEY, MINER_KEY, auth


class HttpClient(Protocol):
    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...
    def delete(self, url: str, **kwargs: Any) -> Any: ...


def online(http: HttpClient, miner_key: str = MINER_KEY) -> None:
    """The miner's agent speaks: its GPUs count as online from now on (for offline_after_s)."""
    resp = http.post("/v1/miners/register", json={}, headers=auth(miner_key))
    assert resp.status_code == 200, resp.text


def register(
    http: HttpClient,
    *,
    miner_key: str = MINER_KEY,
    name: str = "NVIDIA RTX 4090",
    price: str = "0.5",
    memory_gb: float = 24,
    **extra: Any,
) -> str:
    body = {"gpu": {"name": name, "memory_gb": memory_gb, "price_per_hour": price, **extra}}
    resp = http.post("/v1/marketplace/gpu/register", json=body, headers=auth(miner_key))
    assert resp.status_code in (200, 201), resp.text
    return str(resp.json()["gpu_id"])


def credit(http: HttpClient, subject: str, amount: str) -> None:
    resp = http.post(
        f"/v1/admin/accounts/{subject}/credit", json={"amount": amount}, headers=auth(ADMIN_KEY)
    )
    assert resp.status_code == 200, resp.text


def account(http: HttpClient, key: str) -> dict[str, Decimal]:
    body = http.get("/v1/accounts/me", headers=auth(key)).json()
    return {bucket: Decimal(body[bucket]) for bucket in ("balance", "escrowed", "staked")}


def book(http: HttpClient, gpu_id: str, key: str, hours: float = 4, **extra: Any) -> Any:
    return http.post(
        f"/v1/marketplace/gpu/{gpu_id}/book",
        json={"duration_hours": hours, **extra},
        headers=auth(key),
    )


def details(http: HttpClient, gpu_id: str) -> dict[str, Any]:
    resp = http.get(f"/v1/marketplace/gpu/{gpu_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def assert_money_conserved(app: Any) -> None:
    with app.state.db.read() as session:
        check = conservation(session)
    assert check.holds, check
