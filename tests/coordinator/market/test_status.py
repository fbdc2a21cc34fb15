"""`status_condition(s)` selects exactly the GPUs whose status CASE reads `s` (docs/api.md).

The population is written straight into the database so that every state of the rule, and its
boundaries, is there at once: miners that never heartbeated, went stale, sit exactly on the
cutoff, are fresh, or deregistered; GPUs ok, degraded, unhealthy, lost or deleted; bookings
none, live, past `end_time`, ending exactly now, or not active.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from coordinator_stub.db.models import Booking, Gpu, Miner
from coordinator_stub.market.status import gpu_status, select_gpus, status_condition
from tests.support import FakeClock

OFFLINE_AFTER_S = 30
STATUSES = ("available", "booked", "offline")

# (last heartbeat, seconds before now | None for never; deregistered)
MINER_STATES = {
    "never": (None, False),
    "stale": (OFFLINE_AFTER_S + 1, False),
    "on_cutoff": (OFFLINE_AFTER_S, False),  # `>= cutoff`: still online
    "fresh": (1, False),
    "deregistered": (1, True),
    "stale_deregistered": (OFFLINE_AFTER_S + 5, True),
}
HEALTH = ("ok", "degraded", "unhealthy", "lost")
# (booking status, end_time in seconds from now) | None for no booking
BOOKINGS: dict[str, tuple[str, int] | None] = {
    "none": None,
    "live": ("active", 3600),
    "past_end": ("active", -60),  # not yet settled by the sweeper: over all the same
    "ends_now": ("active", 0),  # `end_time > now`: over
    "completed": ("completed", 3600),
}


def expected_status(miner: str, health: str, booking: str) -> str:
    seen_s, deregistered = MINER_STATES[miner]
    online = seen_s is not None and seen_s <= OFFLINE_AFTER_S and not deregistered
    if not online or health in ("unhealthy", "lost"):
        return "offline"
    live = BOOKINGS[booking]
    if live is not None and live[0] == "active" and live[1] > 0:
        return "booked"
    return "available"


def populate(app: Any, now: datetime) -> dict[str, str]:
    """Insert one GPU per (miner state, health, booking) and a deleted one; their expected
    statuses by GPU id."""
    miners, gpus, bookings = [], [], []
    expected: dict[str, str] = {}
    for name, (seen_s, deregistered) in MINER_STATES.items():
        miners.append(
            {
                "id": f"host-{name}",
                "concurrency": 1,
                "capabilities": {},
                "agent": {},
                "registered_at": now - timedelta(hours=1),
                "last_heartbeat_at": None if seen_s is None else now - timedelta(seconds=seen_s),
                "deregistered_at": now - timedelta(minutes=5) if deregistered else None,
                "lease_version": 0,
                "inflight": 0,
            }
        )
    combos = itertools.product(MINER_STATES, HEALTH, BOOKINGS)
    for n, (miner, health, booking) in enumerate(combos):
        gpu_id = f"gpu_{n:016x}"
        gpus.append(gpu_row(gpu_id, f"host-{miner}", health, now, n))
        expected[gpu_id] = expected_status(miner, health, booking)
        spec = BOOKINGS[booking]
        if spec is not None:
            bookings.append(booking_row(gpu_id, f"host-{miner}", spec, now))
    deleted = gpu_row("gpu_deleted", "host-fresh", "ok", now, len(gpus))
    gpus.append({**deleted, "deleted_at": now - timedelta(minutes=1)})  # in no status
    with app.state.db.write() as session:
        session.execute(insert(Miner), miners)
        session.execute(insert(Gpu), gpus)
        session.execute(insert(Booking), bookings)
    return expected


def gpu_row(gpu_id: str, miner_id: str, health: str, now: datetime, n: int) -> dict[str, Any]:
    return {
        "id": gpu_id,
        "miner_id": miner_id,
        "uuid": f"GPU-{n}",
        "model": "NVIDIA L4",
        "memory_gb": 24,
        "region": "eu",
        "capabilities": [],
        "price_per_hour": Decimal("0.5") + Decimal(n % 7) / 10,
        "health": health,
        "rating_sum": 0,
        "total_reviews": 0,
        "created_at": now,
        "updated_at": now,
    }


def booking_row(gpu_id: str, miner_id: str, spec: tuple[str, int], now: datetime) -> dict[str, Any]:
    status, ends_in_s = spec
    return {
        "id": f"bk_{gpu_id[4:]}",
        "gpu_id": gpu_id,
        "miner_id": miner_id,
        "client_id": "alice",
        "duration_hours": 1.0,
        "price_per_hour": Decimal("0.5"),
        "base_price": Decimal("0.5"),
        "total_cost": Decimal("0.5"),
        "pricing": {},
        "status": status,
        "lease_state": "started",
        "lease_generation": 1,
        "start_time": now - timedelta(hours=1),
        "end_time": now + timedelta(seconds=ends_in_s),
        "created_at": now - timedelta(hours=1),
    }


def ids_where(app: Any, condition: Any) -> set[str]:
    query = select_gpus(app.state.clock(), OFFLINE_AFTER_S).with_only_columns(Gpu.id)
    with app.state.db.read() as session:
        return set(session.scalars(query.where(condition)))


@pytest.mark.parametrize("status", STATUSES)
def test_status_condition_agrees_with_the_case(
    client: TestClient, clock: FakeClock, status: str
) -> None:
    app: Any = client.app
    expected = populate(app, clock.now)
    now = clock.now
    want = {gpu_id for gpu_id, s in expected.items() if s == status}
    assert want  # every status is present in the population

    by_case = ids_where(app, gpu_status(now, OFFLINE_AFTER_S) == status)
    by_condition = ids_where(app, status_condition(status, now, OFFLINE_AFTER_S))
    assert by_case == want
    assert by_condition == want
    # Negated (the list's `available=false`): the complement among live GPUs, no NULL gaps.
    negated = ids_where(app, ~status_condition(status, now, OFFLINE_AFTER_S))
    assert negated == set(expected) - want


def test_unknown_status_matches_nothing(client: TestClient, clock: FakeClock) -> None:
    app: Any = client.app
    populate(app, clock.now)
    assert ids_where(app, status_condition("gone", clock.now, OFFLINE_AFTER_S)) == set()


def test_list_filters_by_status_as_the_rule_says(client: TestClient, clock: FakeClock) -> None:
    expected = populate(client.app, clock.now)
    for params, want in [
        ({"status": "available"}, {g for g, s in expected.items() if s == "available"}),
        ({"status": "booked"}, {g for g, s in expected.items() if s == "booked"}),
        ({"status": "offline"}, {g for g, s in expected.items() if s == "offline"}),
        ({"available": "true"}, {g for g, s in expected.items() if s == "available"}),
        ({"available": "false"}, {g for g, s in expected.items() if s != "available"}),
    ]:
        resp = client.get("/v1/marketplace/gpu/list", params={**params, "limit": 500})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert {item["id"] for item in body} == want, params
        assert all(item["status"] == expected[item["id"]] for item in body)
