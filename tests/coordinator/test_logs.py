"""The coordinator's log: one JSON line per request and per market event, never a key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient

from coordinator_stub.core import events
from tests.coordinator.market_support import book
from tests.coordinator.miner_support import credit, heartbeat, ok, online_gpu
from tests.support import (
    ADMIN_KEY,
    CLIENT2_KEY,
    CLIENT_KEY,
    MINER_KEY,
    FakeClock,
    auth,
    free_port,
    live_coordinator,
)

BAD_KEY = "not-a-key-of-this-coordinator-0123456789"


def named(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == event]


def test_booking_and_release_are_logged_once_committed(client: TestClient) -> None:
    gpu_id = online_gpu(client)
    credit(client)
    credit(client, "bob")
    with structlog.testing.capture_logs() as logs:
        booked = ok(book(client, gpu_id, CLIENT_KEY), 201)
        refused = book(client, gpu_id, CLIENT2_KEY)  # already booked: rolled back
        released = ok(
            client.post(f"/v1/marketplace/gpu/{gpu_id}/release", headers=auth(CLIENT_KEY))
        )
    assert refused.status_code == 409
    [created] = named(logs, "booking_created")
    assert created["booking_id"] == booked["booking_id"]
    assert (created["gpu_id"], created["client_id"]) == (gpu_id, "alice")
    assert created["total_cost"] == booked["total_cost"]  # plain notation, as the API says
    [ended] = named(logs, "booking_ended")
    assert (ended["outcome"], ended["booking_id"]) == ("released", booked["booking_id"])
    assert ended["refund"] == released["refund"]
    assert "E" not in ended["refund"]  # never "0E-8"
    requests = named(logs, "http_request")
    assert [r["status"] for r in requests] == [201, 409, 200]
    assert requests[0]["route"] == "/v1/marketplace/gpu/{gpu_id}/book"
    assert (requests[0]["role"], requests[0]["subject"]) == ("client", "alice")
    assert isinstance(requests[0]["duration_ms"], float)


def test_a_refused_key_is_logged_without_the_key(client: TestClient) -> None:
    with structlog.testing.capture_logs() as logs:
        assert client.get("/v1/accounts/me", headers=auth(BAD_KEY)).status_code == 401
        forged = {**auth(MINER_KEY), "X-Miner-ID": "someone-else"}
        assert client.post("/v1/miners/heartbeat", json={}, headers=forged).status_code == 403
    unknown, mismatch = named(logs, "api_key_refused")
    assert (unknown["reason"], unknown["path"]) == ("unknown or revoked key", "/v1/accounts/me")
    assert mismatch["subject"] == "host-01"
    assert mismatch["claimed_miner_id"] == "someone-else"
    assert BAD_KEY not in repr(logs)
    assert MINER_KEY not in repr(logs)


def test_a_miner_going_offline_and_back_is_logged_once_each(
    client: TestClient, clock: FakeClock
) -> None:
    sweeper = client.app.state.sweeper  # type: ignore[attr-defined]
    with structlog.testing.capture_logs() as logs:
        online_gpu(client)  # registers: online
        heartbeat(client)  # still online: no second line
        clock.advance(seconds=120)
        assert sweeper.run_once()["miners_offline"] == 1
        assert sweeper.run_once()["miners_offline"] == 0  # already marked
        heartbeat(client)
    assert [line["event"] for line in logs if line["event"].startswith("miner_")] == [
        "miner_registered",
        "miner_online",
        "miner_offline",
        "miner_online",
    ]
    [offline] = named(logs, "miner_offline")
    assert offline["miner_id"] == "host-01"
    assert offline["silent_s"] == 120.0
    assert offline["log_level"] == "warning"


def test_an_unknown_event_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown coordinator event"):
        events.emit("gpu_exploded")


def test_serve_writes_json_lines_only(tmp_path: Path) -> None:
    log_path = tmp_path / "coordinator.log"
    db_url = f"sqlite:///{tmp_path / 'c.db'}"
    with (
        live_coordinator(db_url, port=free_port(), log_path=log_path) as base,
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        gpu_id = online_gpu(http)
        ok(
            http.post(
                "/v1/admin/accounts/alice/credit", json={"amount": "10"}, headers=auth(ADMIN_KEY)
            )
        )
        ok(book(http, gpu_id, CLIENT_KEY), 201)
        assert http.get("/v1/accounts/me", headers=auth(BAD_KEY)).status_code == 401
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    seen = {line["event"] for line in lines}
    assert {"coordinator_starting", "http_request", "miner_registered", "miner_online"} <= seen
    assert {"gpu_registered", "booking_created", "api_key_refused"} <= seen
    assert any("Uvicorn running" in line["event"] for line in lines)  # uvicorn's own, as JSON
    assert all("timestamp" in line and "level" in line for line in lines)
    routes = {line["route"] for line in lines if line["event"] == "http_request"}
    assert "/v1/marketplace/gpu/{gpu_id}/book" in routes
    assert "/v1/miners/heartbeat" not in routes  # a fleet's heartbeats log at debug only
    assert "/health/ready" not in routes
    assert not [line for line in lines if line["logger"].startswith("alembic")]  # schema chatter
    for key in (ADMIN_KEY, MINER_KEY, CLIENT_KEY, BAD_KEY):
        assert key not in text
