"""Helpers for the pricing, staking, offers and metrics tests: set up a small market by the API."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select

from coordinator_stub.db import Database
from coordinator_stub.models import Base
from tests.support import ADMIN_KEY, auth


class Http(Protocol):  # TestClient and httpx.Client both fit
    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


def register_gpu(
    http: Http,
    miner_key: str,
    *,
    name: str = "RTX 4090",
    price: str = "1.00000000",
    memory_gb: int = 24,
    region: str | None = None,
    cuda_version: str | None = None,
) -> str:
    gpu: dict[str, Any] = {"name": name, "memory_gb": memory_gb, "price_per_hour": price}
    if region is not None:
        gpu["region"] = region
    if cuda_version is not None:
        gpu["cuda_version"] = cuda_version
    resp = http.post("/v1/marketplace/gpu/register", json={"gpu": gpu}, headers=auth(miner_key))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["gpu_id"])


def bring_online(http: Http, miner_key: str, region: str | None = None) -> None:
    """`POST /v1/miners/register` counts as a heartbeat: the miner's GPUs become online."""
    resp = http.post("/v1/miners/register", json={"region": region}, headers=auth(miner_key))
    assert resp.status_code == 200, resp.text


def credit(http: Http, subject: str, amount: str) -> None:
    resp = http.post(
        f"/v1/admin/accounts/{subject}/credit", json={"amount": amount}, headers=auth(ADMIN_KEY)
    )
    assert resp.status_code == 200, resp.text


def book(http: Http, client_key: str, gpu_id: str, hours: float = 1.0) -> dict[str, Any]:
    resp = http.post(
        f"/v1/marketplace/gpu/{gpu_id}/book",
        json={"duration_hours": hours},
        headers=auth(client_key),
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def dump_tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: equal dumps mean nothing was written."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with db.read() as session:
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(table)).all()
            dump[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return dump
