"""Two coordinator processes on one PostgreSQL, an agent that knows both: kill -9 the first
and the host moves to the second within two heartbeat intervals, its GPUs never read
offline, a booking made there becomes a lease, and the money adds up."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from coordinator_stub.db.engine import Database
from coordinator_stub.ledger.transfers import conservation
from tests.e2e.conftest import Coordinator
from tests.e2e.harness import COORDINATOR_ENV, HEARTBEAT_S, Agent, Renter, wait_for
from tests.support import fresh_postgres_database


@pytest.mark.postgres
def test_kill_9_of_one_coordinator_moves_the_host_to_the_other(
    tmp_path: Path, make_agent: Callable[..., Agent]
) -> None:
    db_url = fresh_postgres_database()
    first = Coordinator(tmp_path / "a", dict(COORDINATOR_ENV))
    second = Coordinator(tmp_path / "b", dict(COORDINATOR_ENV))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first.start(db_url)
    second.start(db_url)
    renter = Renter(second.url)
    try:
        agent = Agent(tmp_path / "agent", [first.url, second.url]).start()
        try:
            wait_for(
                "4 available GPUs",
                lambda: [g["status"] for g in renter.gpus()] == ["available"] * 4,
            )
            renter.credit()
            first.kill9()
            killed_at = time.monotonic()
            before = {g["id"]: g["last_heartbeat_at"] for g in renter.gpus()}

            def moved() -> bool:
                return all(g["last_heartbeat_at"] != before[g["id"]] for g in renter.gpus())

            wait_for("a heartbeat through the second coordinator", moved, every_s=0.02)
            moved_after = time.monotonic() - killed_at
            print(f"\nkill -9 → heartbeats through the other coordinator: {moved_after:.2f} s")
            assert moved_after <= 2 * HEARTBEAT_S * 1.1 + 0.3
            [failover] = agent.events("coordinator_failover")
            assert (failover["failed"], failover["now"]) == (first.url, second.url)

            # Booked through the survivor: the lease starts on the host and ends with it.
            gpu = renter.gpus()[0]
            booking = renter.book_ok(gpu["id"], duration_s=600)
            wait_for("lease started", lambda: renter.lease_state(gpu["id"]) == "started")
            assert [run[2] for run in agent.hook_runs("start")] == [booking["booking_id"]]
            assert {g["status"] for g in renter.gpus()} == {"available", "booked"}
            renter.release(gpu["id"])
            wait_for(
                "lease stopped",
                lambda: renter.order(booking["booking_id"])["lease_state"] == "stopped",
            )
            assert len(agent.hook_runs("start")) == 1  # never run twice
        finally:
            agent.stop()
    finally:
        renter.close()
        second.stop()
        first.stop()
    db = Database(db_url)
    with db.read() as session:
        assert conservation(session).holds
    db.dispose()
