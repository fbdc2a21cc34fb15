"""API keys as an operator manages them: ids, listing, revocation, one role per subject, and
the secrets' surroundings (bootstrap key length, the database file's mode)."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from coordinator_stub.auth import KeyCache, revoke_key, store_key
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db.engine import Database
from coordinator_stub.db.migrate import prepare_for_serve
from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, FakeClock, auth, live_coordinator


def issue(client: Any, role: str, subject: str) -> Any:
    return client.post(
        "/v1/admin/api-keys", json={"role": role, "subject": subject}, headers=auth(ADMIN_KEY)
    )


def test_a_new_key_has_an_id_and_the_list_never_shows_a_key(
    client: TestClient, clock: FakeClock
) -> None:
    made = issue(client, "client", "carol")
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["key_id"].startswith("key_")
    assert len(body["key_id"]) == len("key_") + 16
    key = body["api_key"]
    assert client.get("/v1/accounts/me", headers=auth(key)).json()["subject"] == "carol"
    listed = client.get("/v1/admin/api-keys", headers=auth(ADMIN_KEY))
    assert listed.status_code == 200
    text = listed.text
    assert key not in text
    assert "key_hash" not in text
    (carol,) = [k for k in listed.json() if k["subject"] == "carol"]
    assert carol == {
        "key_id": body["key_id"],
        "role": "client",
        "subject": "carol",
        "created_at": carol["created_at"],
        "last_used_at": carol["last_used_at"],
        "revoked_at": None,
    }
    assert carol["last_used_at"] is not None  # it was used once above
    only = client.get("/v1/admin/api-keys", params={"subject": "carol"}, headers=auth(ADMIN_KEY))
    assert [k["key_id"] for k in only.json()] == [body["key_id"]]
    assert client.get("/v1/admin/api-keys", headers=auth(CLIENT_KEY)).status_code == 403


def test_a_revoked_key_is_refused_at_once(client: TestClient) -> None:
    made = issue(client, "miner", "host-09").json()
    key = made["api_key"]
    assert client.post("/v1/miners/register", json={}, headers=auth(key)).status_code == 200
    revoked = client.delete(f"/v1/admin/api-keys/{made['key_id']}", headers=auth(ADMIN_KEY))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert client.post("/v1/miners/register", json={}, headers=auth(key)).status_code == 401
    again = client.delete(f"/v1/admin/api-keys/{made['key_id']}", headers=auth(ADMIN_KEY))
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    listed = client.get(
        "/v1/admin/api-keys", params={"subject": "host-09"}, headers=auth(ADMIN_KEY)
    )
    assert listed.json()[0]["revoked_at"] == revoked.json()["revoked_at"]
    for key_id in ("key_0000000000000000", "nope!", "x" * 32):
        resp = client.delete(f"/v1/admin/api-keys/{key_id}", headers=auth(ADMIN_KEY))
        assert resp.status_code == 404, key_id
    assert (
        client.delete(f"/v1/admin/api-keys/{made['key_id']}", headers=auth(MINER_KEY)).status_code
        == 403
    )


def test_a_revocation_reaches_every_process_within_the_cache_time(
    db_url: str, tmp_path: Path
) -> None:
    with live_coordinator(db_url) as first, live_coordinator(db_url) as second:
        made = httpx.post(
            f"{first}/v1/admin/api-keys",
            json={"role": "client", "subject": "dave"},
            headers=auth(ADMIN_KEY),
        ).json()
        key = made["api_key"]
        assert httpx.get(f"{second}/v1/accounts/me", headers=auth(key)).status_code == 200
        revoked_at = time.monotonic()
        resp = httpx.delete(f"{first}/v1/admin/api-keys/{made['key_id']}", headers=auth(ADMIN_KEY))
        assert resp.status_code == 200
        assert httpx.get(f"{first}/v1/accounts/me", headers=auth(key)).status_code == 401
        while httpx.get(f"{second}/v1/accounts/me", headers=auth(key)).status_code == 200:
            assert time.monotonic() - revoked_at < 4, "the other process still accepts it"
            time.sleep(0.1)
        assert httpx.get(f"{second}/v1/accounts/me", headers=auth(key)).status_code == 401


def test_a_subject_belongs_to_one_role(client: TestClient) -> None:
    # host-01 is a miner (a bootstrap key): a client key for it would spend its earnings.
    refused = issue(client, "client", "host-01")
    assert refused.status_code == 409
    assert "miner role" in refused.json()["detail"]
    assert issue(client, "miner", "host-01").status_code == 201  # a second key, same role: fine
    assert issue(client, "admin", "alice").status_code == 409


@pytest.mark.parametrize(
    "subject", ["x$(touch PWNED)", "a\nb", "-rf", "a b", "ünïcode", "a" * 129, ".hidden", ""]
)
def test_a_subject_is_a_safe_name(client: TestClient, subject: str) -> None:
    assert issue(client, "client", subject).status_code == 422


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("admin:ops:short-key", "shorter than 32 characters"),
        ("client:bad subject:" + "k" * 40, "subject"),
        ("client:$(id):" + "k" * 40, "subject"),
    ],
)
def test_a_weak_or_odd_bootstrap_key_is_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        CoordinatorSettings(bootstrap_keys=value)


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.db"
    old = os.umask(0o022)  # the usual umask, which would make it 0644
    try:
        db = Database(f"sqlite:///{path}")
        prepare_for_serve(db)
        db.dispose()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


class _Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_key_cache_trusts_a_key_only_while_revocations_are_being_checked(
    tmp_path: Path,
) -> None:
    """A fleet's keys are not re-read on every heartbeat, yet a revocation made by another
    process is honoured within ttl_s, and nothing is trusted when the check stops answering."""
    db = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    prepare_for_serve(db)
    wall = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    key = "miner-key-for-the-cache-test-0123456789"
    with db.write() as session:
        key_id = store_key(session, key=key, role="miner", subject="host-77", now=wall)
    ticks = _Ticks()
    cache = KeyCache(ttl_s=2.0, clock=ticks)
    with db.read() as session:
        principal, _row = cache.lookup(session, key)
    assert principal is not None
    assert cache.peek(key) is None  # revocations never checked yet: nothing is trusted
    with db.read() as session:
        assert cache.drop_revoked(session, wall) == 0
    assert cache.peek(key) == principal
    ticks.now += 1.5
    assert cache.peek(key) == principal  # no re-read within ttl_s of the last check
    ticks.now += 1.0
    assert cache.peek(key) is None  # the check is overdue: trust has lapsed
    with db.read() as session:
        cache.drop_revoked(session, wall)
    assert cache.peek(key) == principal  # trusted again, long after its lookup
    with db.write() as session:  # "another process" revokes it: this cache was not told
        revoke_key(session, key_id=key_id, now=wall)
    assert cache.peek(key) == principal
    with db.read() as session:
        assert cache.drop_revoked(session, wall) == 1
    assert cache.peek(key) is None
    with db.read() as session:
        assert cache.lookup(session, key) == (None, None)
    db.dispose()
