"""`aitbc-coordinator keys create|list|revoke`: keys without the admin API (a first admin key
outside systemd, a revocation from a shell)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coordinator_stub.app import create_app
from coordinator_stub.cli import main
from coordinator_stub.config import CoordinatorSettings


def keys(url: str, *args: str) -> int:
    action, *rest = args
    return main(["keys", action, "--database-url", url, *rest])


def test_a_first_admin_key_from_the_shell_works_and_can_be_revoked(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert keys(db_url, "create", "--role", "admin", "--subject", "ops") == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("admin_")
    assert key not in err  # the key once, on stdout only
    created = re.search(r"created (key_[0-9a-f]{16}) \(admin ops\); shown once", err)
    assert created is not None, err
    key_id = created.group(1)
    app = create_app(CoordinatorSettings(database_url=db_url), run_sweeper=False)
    with TestClient(app) as client:
        admin = {"X-Api-Key": key}
        body = {"role": "client", "subject": "erin"}
        made = client.post("/v1/admin/api-keys", json=body, headers=admin)
        assert made.status_code == 201
        assert keys(db_url, "list") == 0
        listing = capsys.readouterr().out
        assert key_id in listing
        assert "ops" in listing
        assert "erin" in listing
        assert key not in listing
        assert keys(db_url, "revoke", key_id) == 0
        assert "revoked" in capsys.readouterr().out
        # The running app learns of it from the database within key_cache_ttl_s (2 s).
        deadline = time.monotonic() + 4
        while client.get("/v1/accounts/me", headers=admin).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key is still accepted"
            time.sleep(0.1)
        assert client.get("/v1/accounts/me", headers=admin).status_code == 401


def test_keys_refuses_what_the_api_refuses(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys(db_url, "create", "--role", "miner", "--subject", "host-01") == 0
    assert keys(db_url, "create", "--role", "client", "--subject", "host-01") == 65
    assert "one subject, one role" in capsys.readouterr().err
    assert keys(db_url, "create", "--role", "client", "--subject", "$(id)") == 65
    assert keys(db_url, "revoke", "key_0000000000000000") == 65
