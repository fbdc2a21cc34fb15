"""Auth, ledger and liveness basics that every other coordinator feature stands on."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.ledger.transfers import conservation
from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, auth


def test_health_ready_answers_when_database_is_up(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/health/ready").status_code == 200


def test_admin_credit_enters_money_and_conservation_holds(client: TestClient) -> None:
    resp = client.post(
        "/v1/admin/accounts/alice/credit", json={"amount": "12.5"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status_code == 200
    assert resp.json()["balance"] == "12.50000000"
    me = client.get("/v1/accounts/me", headers=auth(CLIENT_KEY)).json()
    assert me == {
        "subject": "alice",
        "role": "client",
        "balance": "12.50000000",
        "escrowed": "0.00000000",
        "staked": "0.00000000",
    }
    with client.app.state.db.read() as session:  # type: ignore[attr-defined]
        check = conservation(session)
    assert check.holds
    assert str(check.credited) == "12.50000000"


def test_credit_rejects_bad_amounts(client: TestClient) -> None:
    for amount in ["-1", "NaN", "Infinity", "0.000000001", True, "abc"]:
        resp = client.post(
            "/v1/admin/accounts/alice/credit", json={"amount": amount}, headers=auth(ADMIN_KEY)
        )
        assert resp.status_code == 422, amount


def test_roles_and_keys_are_enforced(client: TestClient) -> None:
    assert client.post("/v1/admin/accounts/x/credit", json={"amount": 1}).status_code == 401
    resp = client.post("/v1/admin/accounts/x/credit", json={"amount": 1}, headers=auth(CLIENT_KEY))
    assert resp.status_code == 403
    assert client.get("/v1/accounts/me", headers=auth("nope")).status_code == 401
    bearer = {"Authorization": f"Bearer {CLIENT_KEY}"}
    assert client.get("/v1/accounts/me", headers=bearer).json()["subject"] == "alice"


def test_admin_issues_a_working_key_shown_once(client: TestClient) -> None:
    resp = client.post(
        "/v1/admin/api-keys", json={"role": "client", "subject": "carol"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status_code == 201
    key = resp.json()["api_key"]
    assert client.get("/v1/accounts/me", headers=auth(key)).json()["subject"] == "carol"


def test_miner_id_header_must_match_the_key(client: TestClient) -> None:
    ok = client.post(
        "/v1/miners/register", json={}, headers={**auth(MINER_KEY), "X-Miner-ID": "default"}
    )
    assert ok.status_code == 200
    assert ok.json()["miner_id"] == "host-01"
    bad = client.post(
        "/v1/miners/register", json={}, headers={**auth(MINER_KEY), "X-Miner-ID": "other"}
    )
    assert bad.status_code == 403


def test_heartbeat_before_register_is_404(client: TestClient) -> None:
    resp = client.post("/v1/miners/heartbeat", json={}, headers=auth(MINER_KEY))
    assert resp.status_code == 404
    assert resp.json() == {"detail": "miner not registered"}


def test_bootstrap_keys_come_from_the_systemd_credential_too(tmp_path: Path) -> None:
    k1, k2, k9 = (
        "K1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "K2-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "K9-cccccccccccccccccccccccccccccccc",
    )
    (tmp_path / "bootstrap-keys").write_text(
        f"admin:ops:{k1}\nclient:carol:{k9}\n", encoding="utf-8"
    )
    settings = CoordinatorSettings(bootstrap_keys=f"miner:host-01:{k2}")
    keys = settings.parsed_bootstrap_keys({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert [(k.role, k.subject, k.key) for k in keys] == [
        ("miner", "host-01", k2),
        ("admin", "ops", k1),
        ("client", "carol", k9),
    ]
    assert k9 not in repr(keys)


def test_malformed_bootstrap_key_is_rejected_by_position() -> None:
    with pytest.raises(ValueError, match="bootstrap key #2"):
        CoordinatorSettings(
            bootstrap_keys="admin:ops:K1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,client:nokey"
        )
