"""One sweeper per PostgreSQL database: of the coordinator processes sharing it, the holder of an
advisory lock sweeps; when it dies another takes over, and expired bookings still end."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.coordinator.miner_support import account, book, credit, online_gpu
from tests.support import CLIENT_KEY, fresh_postgres_database, live_coordinator, wait_for

LEADING = "aitbc_coordinator_sweeper_leading"


def _leading(base: str) -> bool:
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{LEADING} "):
            return float(line.split()[1]) == 1.0
    raise AssertionError(f"{LEADING} missing from {base}/metrics")


@pytest.mark.postgres
def test_one_of_two_processes_sweeps_and_the_other_takes_over() -> None:
    url = fresh_postgres_database()
    env = {"COORDINATOR_SWEEP_INTERVAL_S": "0.2", "COORDINATOR_MIN_BOOKING_S": "1"}
    with ExitStack() as first, ExitStack() as second:
        bases = [
            first.enter_context(live_coordinator(url, env=env)),
            second.enter_context(live_coordinator(url, env=env)),
        ]
        wait_for("one leader", lambda: sum(map(_leading, bases)) == 1)
        time.sleep(1.0)  # several passes later, still exactly one
        leaders = [_leading(base) for base in bases]
        assert sum(leaders) == 1
        leader, other = (first, second) if leaders[0] else (second, first)
        survivor = bases[1] if leaders[0] else bases[0]
        leader.close()  # the leading process stops; its lock goes with its connection
        wait_for("the other process leads", lambda: _leading(survivor))
        # And it really sweeps: a booking that runs out is settled without any API call
        # (the renter's escrow is paid out; reads alone would only show it as ended).
        with httpx.Client(base_url=survivor, timeout=10) as client:
            gpu_id = online_gpu(client)
            credit(client)
            book(client, gpu_id, hours=2 / 3600)
            assert account(client, CLIENT_KEY)["escrowed"] > 0
            wait_for(
                "the expired booking settled by the sweeper",
                lambda: account(client, CLIENT_KEY)["escrowed"] == 0,
                timeout_s=15,
            )
        other.close()


def test_every_process_sweeps_on_sqlite(tmp_path: Path) -> None:
    with live_coordinator(f"sqlite:///{tmp_path / 'c.db'}") as base:
        wait_for("the sweeper's first pass", lambda: _leading(base))
