"""Helpers that set up a small market by the API only (TestClient or httpx.Client), and check it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select

from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Base
from coordinator_stub.ledger.transfers import conservation
from tests.support import ADMIN_KEY, MINER_KEY, auth


class HttpClient(Protocol):  # TestClient and httpx.Client both fit
    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...
    def delete(self, url: str, **kwargs: Any) -> Any: ...


def online(http: HttpClient, miner_key: str = MINER_KEY, region: str | None = None) -> None:
    """`POST /v1/miners/register` counts as a heartbeat: the miner's GPUs count as online from now
    on (for offline_after_s)."""
    resp = http.post("/v1/miners/register", json={"region": region}, headers=auth(miner_key))
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
    """Register a new GPU (no uuid, so always a new one: 201) and return its id."""
    body = {"gpu": {"name": name, "memory_gb": memory_gb, "price_per_hour": price, **extra}}
    resp = http.post("/v1/marketplace/gpu/register", json=body, headers=auth(miner_key))
    assert resp.status_code == 201, resp.text
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
    """Try to book: the response, whatever its status."""
    return http.post(
        f"/v1/marketplace/gpu/{gpu_id}/book",
        json={"duration_hours": hours, **extra},
        headers=auth(key),
    )


def new_booking(http: HttpClient, gpu_id: str, key: str, hours: float = 4) -> dict[str, Any]:
    """Book, which must succeed (201): the booking."""
    resp = book(http, gpu_id, key, hours)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def details(http: HttpClient, gpu_id: str) -> dict[str, Any]:
    resp = http.get(f"/v1/marketplace/gpu/{gpu_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def assert_money_conserved(app: Any) -> None:
    with app.state.db.read() as session:
        check = conservation(session)
    assert check.holds, check


def dump_tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: equal dumps mean nothing was written."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with db.read() as session:
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(table)).all()
            dump[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return dump
