"""The lease long poll (`GET /v1/miners/leases`): answers, waits, and wakes.

Wake-up paths under test: in-process (a commit in the same coordinator), SQLite across
processes (the version poller), PostgreSQL across processes (LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from coordinator_stub.app import create_app
from coordinator_stub.config import CoordinatorSettings
from tests.coordinator.miner_support import book, credit, heartbeat, ok, online_gpu
from tests.support import (
    BOOTSTRAP_KEYS,
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    FakeClock,
    auth,
    fresh_postgres_database,
    live_coordinator,
)

LEASES = "/v1/miners/leases"


def _poll(client: Any, since: int | None = None, wait_s: float = 0, key: str = MINER_KEY) -> Any:
    params: dict[str, Any] = {"wait_s": wait_s}
    if since is not None:
        params["since"] = since
    if isinstance(client, TestClient):  # in-process: no network timeouts
        return client.get(LEASES, params=params, headers=auth(key))
    return client.get(LEASES, params=params, headers=auth(key), timeout=wait_s + 10)


class PollInBackground:
    """A long poll held open in a thread; records when its answer arrived."""

    def __init__(self, client: Any, since: int, wait_s: float) -> None:
        self.answer: Any = None
        self.answered_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(client, since, wait_s))
        self._thread.start()

    def _run(self, client: Any, since: int, wait_s: float) -> None:
        self.answer = _poll(client, since, wait_s)
        self.answered_at = time.monotonic()

    def join(self, timeout_s: float = 30) -> Any:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the long poll never answered"
        return ok(self.answer)


def _wake_latency(poll_client: Any, book_client: Any, gpu_id: str, wait_s: float) -> float:
    """Hold a poll on `poll_client`, book through `book_client`; seconds from book to wake-up."""
    since = ok(_poll(poll_client))["lease_version"]
    poll = PollInBackground(poll_client, since, wait_s)
    time.sleep(0.5)  # the poll is parked on its waiter by now
    assert poll.answer is None, "the poll answered before anything changed"
    booking = book(book_client, gpu_id)
    booked_at = time.monotonic()
    answer = poll.join()
    assert answer["changed"] is True
    assert answer["lease_version"] > since
    assert [x["booking_id"] for x in answer["leases"]] == [booking["booking_id"]]
    return max(poll.answered_at - booked_at, 0.0)


@pytest.fixture
def slow_poll_client(db_url: str) -> Iterator[TestClient]:
    """In-process app whose SQLite version poller is too slow to explain a fast wake-up."""
    settings = CoordinatorSettings(
        database_url=db_url, bootstrap_keys=BOOTSTRAP_KEYS, lease_poll_interval_s=5
    )
    with TestClient(create_app(settings, run_sweeper=False)) as client:
        yield client


def test_long_poll_answers_at_once_when_the_version_differs(client: TestClient) -> None:
    gpu_id = online_gpu(client)
    credit(client)
    first = ok(_poll(client))  # no `since`: the current set, at once
    assert (first["changed"], first["leases"]) == (True, [])
    book(client, gpu_id)
    started = time.monotonic()
    newer = ok(_poll(client, since=first["lease_version"], wait_s=20))
    assert time.monotonic() - started < 2
    assert newer["changed"] is True
    assert newer["lease_version"] > first["lease_version"]
    assert [x["state"] for x in newer["leases"]] == ["active"]
    # A `since` from another history (the coordinator lost its database) never waits either.
    started = time.monotonic()
    ahead = ok(_poll(client, since=newer["lease_version"] + 100, wait_s=20))
    assert time.monotonic() - started < 2
    assert (ahead["changed"], ahead["lease_version"]) == (True, newer["lease_version"])


def test_long_poll_without_a_change_answers_after_wait_s(client: TestClient) -> None:
    online_gpu(client)
    version = ok(_poll(client))["lease_version"]
    started = time.monotonic()
    answer = ok(_poll(client, since=version, wait_s=0.6))
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 3
    assert answer == {"status": "ok", "lease_version": version, "changed": False, "leases": []}


def test_long_poll_checks_its_input_and_caller(client: TestClient) -> None:
    assert _poll(client).status_code == 404  # the miner never registered
    ok(client.post("/v1/miners/register", json={}, headers=auth(MINER_KEY)))
    assert client.get(LEASES, params={"wait_s": 31}, headers=auth(MINER_KEY)).status_code == 422
    assert client.get(LEASES, params={"since": -1}, headers=auth(MINER_KEY)).status_code == 422
    assert client.get(LEASES, headers=auth(CLIENT_KEY)).status_code == 403
    assert client.get(LEASES).status_code == 401


def test_long_poll_wakes_at_once_on_a_book_in_the_same_process(
    slow_poll_client: TestClient,
) -> None:
    gpu_id = online_gpu(slow_poll_client)
    credit(slow_poll_client)
    latency = _wake_latency(slow_poll_client, slow_poll_client, gpu_id, wait_s=20)
    assert latency < 0.3


def test_long_poll_wakes_on_release_and_on_expiry_by_the_sweeper(
    client: TestClient, clock: FakeClock
) -> None:
    gpu_id = online_gpu(client)
    credit(client)
    booking = book(client, gpu_id, hours=1)
    clock.advance(hours=1, seconds=1)
    version = ok(_poll(client))["lease_version"]
    # Expiry: the sweeper settles it, the poll wakes with `ended`.
    poll = PollInBackground(client, version, wait_s=20)
    time.sleep(0.5)
    client.app.state.sweeper.run_once()  # type: ignore[attr-defined]
    answer = poll.join()
    assert [(x["booking_id"], x["state"]) for x in answer["leases"]] == [
        (booking["booking_id"], "ended")
    ]
    # Release of a fresh booking wakes it too.
    heartbeat(client)
    second = book(client, gpu_id, hours=1)
    version = ok(_poll(client))["lease_version"]
    poll = PollInBackground(client, version, wait_s=20)
    time.sleep(0.3)
    ok(client.post(f"/v1/marketplace/gpu/{gpu_id}/release", headers=auth(CLIENT_KEY)))
    answer = poll.join()
    states = {x["booking_id"]: x["state"] for x in answer["leases"]}
    assert states[second["booking_id"]] == "ended"


def _two_coordinators_wake_latency(db_url: str) -> float:
    with (
        live_coordinator(db_url) as base_a,
        live_coordinator(db_url) as base_b,
        httpx.Client(base_url=base_a) as a,
        httpx.Client(base_url=base_b) as b,
    ):
        gpu_id = online_gpu(a)
        credit(a)
        heartbeat(b)  # B knows the miner too (same database)
        return _wake_latency(b, a, gpu_id, wait_s=20)


def test_long_poll_wakes_across_two_processes_on_sqlite(tmp_path: Path) -> None:
    latency = _two_coordinators_wake_latency(f"sqlite:///{tmp_path / 'shared.db'}")
    assert latency < 1.0  # one lease_poll_interval_s (0.2 s) plus the answer


@pytest.mark.postgres
def test_long_poll_wakes_across_two_processes_on_postgres() -> None:
    latency = _two_coordinators_wake_latency(fresh_postgres_database())
    assert latency < 0.5  # NOTIFY at commit: typically a few milliseconds


async def _until_parked(client: httpx.AsyncClient, polls: int, timeout_s: float = 10) -> None:
    """Wait until the coordinator's gauge shows `polls` long polls parked."""
    deadline = time.monotonic() + timeout_s
    line = f"aitbc_coordinator_lease_polls_open {float(polls)}"
    while line not in (await client.get("/metrics")).text:
        assert time.monotonic() < deadline, f"{polls} polls never parked"
        await asyncio.sleep(0.05)


def test_hundreds_of_open_polls_do_not_starve_the_server(tmp_path: Path) -> None:
    """Waiting polls hold no worker thread: with 200 open, a heartbeat still answers at once."""
    # One key may hold 200 here, so that all of them stay parked (4 by default: the rest would
    # be superseded at once and the test would measure that churn instead).
    env = {"COORDINATOR_MAX_LEASE_POLLS_PER_MINER": "256"}
    with live_coordinator(f"sqlite:///{tmp_path / 'c.db'}", env=env) as base:
        with httpx.Client(base_url=base) as sync_client:
            online_gpu(sync_client)
            ok(sync_client.post("/v1/miners/register", json={}, headers=auth(MINER2_KEY)))
            version = ok(_poll(sync_client))["lease_version"]

        async def scenario() -> tuple[list[httpx.Response], list[float]]:
            limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as aclient:
                params = {"since": version, "wait_s": 4}
                polls = [
                    asyncio.create_task(aclient.get(LEASES, params=params, headers=auth(MINER_KEY)))
                    for _ in range(200)
                ]
                await _until_parked(aclient, 200)
                latencies = []
                for _ in range(10):
                    started = time.monotonic()
                    resp = await aclient.post(
                        "/v1/miners/heartbeat", json={}, headers=auth(MINER2_KEY)
                    )
                    latencies.append(time.monotonic() - started)
                    assert resp.status_code == 200
                return list(await asyncio.gather(*polls)), latencies

        answers, latencies = asyncio.run(scenario())
    assert max(latencies) < 0.5, latencies
    assert len(answers) == 200
    assert all(r.status_code == 200 and r.json()["changed"] is False for r in answers)


def test_open_polls_answer_at_once_when_the_coordinator_stops(tmp_path: Path) -> None:
    """SIGTERM must not wait out parked polls (up to 30 s each) before the process exits."""
    with live_coordinator(f"sqlite:///{tmp_path / 'c.db'}") as base:
        client = httpx.Client(base_url=base)
        ok(client.post("/v1/miners/register", json={}, headers=auth(MINER_KEY)))
        version = ok(_poll(client))["lease_version"]
        poll = PollInBackground(client, version, wait_s=30)
        time.sleep(0.5)
        stopping_at = time.monotonic()
    stopped_in = time.monotonic() - stopping_at
    answer = poll.join()
    client.close()
    assert stopped_in < 3
    assert (answer["changed"], answer["lease_version"]) == (False, version)
