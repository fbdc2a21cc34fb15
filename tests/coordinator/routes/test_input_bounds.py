"""Edges a reviewer found: amounts past what can exist, free bookings, X-Miner-ID on shared
routes, wrong methods on fixed paths, secrets in start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from coordinator_stub.core.money import MAX_SUPPLY
from tests.coordinator.market_support import (
    account,
    assert_money_conserved,
    book,
    credit,
    new_booking,
    online,
    register,
)
from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, REPO, auth

TOO_MUCH = str(MAX_SUPPLY + 1)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/admin/accounts/alice/credit", {"amount": TOO_MUCH}),
        (
            "post",
            "/v1/marketplace/gpu/register",
            {"gpu": {"name": "X", "memory_gb": 1, "price_per_hour": TOO_MUCH}},
        ),
        ("post", "/v1/marketplace/bids", {"provider": "host-01", "capacity": 1, "price": TOO_MUCH}),
        ("get", f"/v1/marketplace/gpu/list?price_max={TOO_MUCH}", None),
        ("get", f"/v1/marketplace/offers?price_max={TOO_MUCH}", None),
    ],
)
def test_an_amount_beyond_the_supply_cap_is_a_422(
    client: TestClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    key = {"post": MINER_KEY if "gpu/register" in path else ADMIN_KEY}.get(method, "")
    if "bids" in path:
        key = CLIENT_KEY
    kwargs: dict[str, object] = {"headers": auth(key)}
    if body is not None:
        kwargs["json"] = body
    resp = getattr(client, method)(path, **kwargs)
    assert resp.status_code == 422, resp.text


def test_credits_stop_at_the_supply_cap_and_stay_exact(client: TestClient) -> None:
    credit(client, "alice", "9000000000.00000001")
    credit(client, "bob", "999999999.99999999")  # 9000000000.00000001 + this = the cap exactly
    assert str(account(client, CLIENT_KEY)["balance"]) == "9000000000.00000001"
    resp = client.post(
        "/v1/admin/accounts/carol/credit", json={"amount": "0.00000001"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status_code == 422
    assert "total supply" in resp.json()["detail"]
    assert_money_conserved(client.app)


def test_a_booking_costing_more_than_can_exist_is_refused_not_a_500(client: TestClient) -> None:
    gpu_id = register(client, price=str(MAX_SUPPLY))
    online(client)
    credit(client, "alice", "100")
    resp = book(client, gpu_id, CLIENT_KEY, hours=8760)
    assert resp.status_code == 402, resp.text
    assert_money_conserved(client.app)


def test_a_booking_whose_cost_rounds_to_zero_is_refused(client: TestClient, gpu: str) -> None:
    resp = book(client, gpu, CLIENT_KEY, hours=1e-12)
    assert resp.status_code == 422, resp.text
    assert "too short" in resp.json()["detail"]
    # No booking, so no review either.
    review = client.post(
        f"/v1/marketplace/gpu/{gpu}/reviews",
        json={"rating": 5, "comment": None},
        headers=auth(CLIENT_KEY),
    )
    assert review.status_code == 403


def test_x_miner_id_is_checked_on_shared_routes_too(client: TestClient, gpu: str) -> None:
    new_booking(client, gpu, CLIENT_KEY, hours=1)
    wrong = {**auth(MINER_KEY), "X-Miner-ID": "someone-else"}
    assert client.get("/v1/marketplace/orders", headers=wrong).status_code == 403
    assert client.post(f"/v1/marketplace/gpu/{gpu}/release", headers=wrong).status_code == 403
    assert client.get(f"/v1/marketplace/gpu/{gpu}").json()["status"] == "booked"
    right = {**auth(MINER_KEY), "X-Miner-ID": "host-01"}
    assert client.get("/v1/marketplace/orders", headers=right).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("get", "/v1/marketplace/gpu/register", "POST"),
        ("delete", "/v1/marketplace/gpu/register", "POST"),
        ("delete", "/v1/marketplace/gpu/list", "GET"),
        ("put", "/v1/marketplace/gpu/list", None),
    ],
)
def test_a_wrong_method_on_a_fixed_path_is_405(
    client: TestClient, method: str, path: str, allow: str | None
) -> None:
    resp = getattr(client, method)(path)
    assert resp.status_code == 405
    if allow is not None:
        assert resp.headers["allow"] == allow


def coordinator_with(settings: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    """Run `aitbc-coordinator COMMAND` with these COORDINATOR_* settings (an in-memory database)."""
    env = {**os.environ, "COORDINATOR_DATABASE_URL": "sqlite:///:memory:", **settings}
    return subprocess.run(
        [sys.executable, "-m", "coordinator_stub", *command],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_bootstrap_key_setting_never_prints_the_keys() -> None:
    bootstrap = {"COORDINATOR_BOOTSTRAP_KEYS": "admin:ops:SUPERSECRET1,root:x:SECRET2"}
    proc = coordinator_with(bootstrap, "serve")
    assert proc.returncode == 78
    assert "COORDINATOR_BOOTSTRAP_KEYS" in proc.stderr
    assert "SUPERSECRET1" not in proc.stderr + proc.stdout
    assert "SECRET2" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("command", [["serve"], ["migrate", "--check"]])
def test_a_misspelt_coordinator_setting_is_refused_by_name(command: list[str]) -> None:
    proc = coordinator_with({"COORDINATOR_OFLINE_AFTER_S": "5"}, *command)  # offline_after_s
    assert proc.returncode == 78
    assert "unknown setting COORDINATOR_OFLINE_AFTER_S" in proc.stderr
