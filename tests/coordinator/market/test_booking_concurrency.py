"""No double booking, ever: 50 concurrent books on one GPU over real HTTP.

SQLite: one coordinator process. PostgreSQL: two coordinator processes on one database, the
requests spread over both, so only the database can keep the invariant.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Booking
from coordinator_stub.ledger.transfers import conservation
from tests.coordinator.market_support import credit, online, register
from tests.support import (
    CLIENT2_KEY,
    CLIENT_KEY,
    MINER_KEY,
    auth,
    fresh_postgres_database,
    live_coordinator,
)

REQUESTS = 50


def _all_at_once(
    clients: list[httpx.Client], method: str, url: str, keys: list[str]
) -> Counter[int]:
    """Send REQUESTS requests released together by a barrier, round-robin over the clients."""
    barrier = threading.Barrier(REQUESTS)

    def one(i: int) -> int:
        http = clients[i % len(clients)]
        key = keys[i % len(keys)]
        barrier.wait(timeout=30)
        body = {"duration_hours": 2} if url.endswith("/book") else None
        return http.request(method, url, json=body, headers=auth(key)).status_code

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return Counter(pool.map(one, range(REQUESTS)))


def _race_and_check(db_url: str, bases: list[str]) -> None:
    clients = [httpx.Client(base_url=base, timeout=60) for base in bases]
    try:
        setup = clients[0]
        online(setup)
        gpu = register(setup)
        credit(setup, "alice", "1000")
        credit(setup, "bob", "1000")

        booked = _all_at_once(
            clients, "POST", f"/v1/marketplace/gpu/{gpu}/book", [CLIENT_KEY, CLIENT2_KEY]
        )
        assert booked == Counter({201: 1, 409: REQUESTS - 1})
        shown = [http.get(f"/v1/marketplace/gpu/{gpu}").json() for http in clients]
        assert {gpu_object["status"] for gpu_object in shown} == {"booked"}  # in every process
        winner = shown[0]["current_booking"]["client_id"]
        winner_key = CLIENT_KEY if winner == "alice" else CLIENT2_KEY

        # Ending it races too: its client and its miner release 50 times at once; one wins.
        released = _release_race(clients, gpu, winner_key)
        assert released == Counter({"released": 1, "already_available": REQUESTS - 1})
    finally:
        for http in clients:
            http.close()

    db = Database(db_url)
    try:
        with db.read() as session:
            statuses = Counter(
                dict(
                    session.execute(
                        select(Booking.status, func.count()).group_by(Booking.status)
                    ).all()
                )
            )
            check = conservation(session)
    finally:
        db.dispose()
    assert sum(statuses.values()) == 1
    assert set(statuses) <= {"released", "cancelled_by_provider"}
    assert check.holds, check
    assert check.credited == 2000


def _release_race(clients: list[httpx.Client], gpu: str, client_key: str) -> Counter[str]:
    barrier = threading.Barrier(REQUESTS)

    def one(i: int) -> str:
        barrier.wait(timeout=30)
        key = client_key if i % 2 else MINER_KEY
        resp = clients[i % len(clients)].post(
            f"/v1/marketplace/gpu/{gpu}/release", headers=auth(key)
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["status"])

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return Counter(pool.map(one, range(REQUESTS)))


def test_book_is_atomic_in_one_process_on_sqlite(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'race.db'}"
    with live_coordinator(db_url) as base:
        _race_and_check(db_url, [base])


@pytest.mark.postgres
def test_book_is_atomic_across_two_processes_on_postgresql() -> None:
    db_url = fresh_postgres_database()
    with live_coordinator(db_url) as first, live_coordinator(db_url) as second:
        _race_and_check(db_url, [first, second])
