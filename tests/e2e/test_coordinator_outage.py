"""The coordinator goes away: the agent keeps running with backoff and recovers, also after
the coordinator lost its database."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Coordinator
from tests.e2e.harness import HEARTBEAT_S, Agent, Renter, wait_for


def _all_available(renter: Renter) -> list[str] | None:
    statuses = renter.statuses()
    return statuses if statuses == ["available"] * 4 else None


def _attempts(agent: Agent) -> int:
    return len(agent.events("coordinator_unreachable"))


def _outage(
    outage_s: float,
    coordinator: Coordinator,
    renter: Renter,
    agent: Agent,
    *,
    new_db: Path | None = None,
) -> None:
    wait_for("4 available GPUs", lambda: _all_available(renter))
    old_ids = sorted(agent.state()["gpu_ids"].values())
    coordinator.stop()
    cpu_before = agent.cpu_seconds()
    started = time.monotonic()
    time.sleep(outage_s)
    assert agent.proc is not None
    assert agent.proc.poll() is None, agent.log_tail()
    cpu_s = agent.cpu_seconds() - cpu_before
    attempts = _attempts(agent)
    heartbeats_due = outage_s / HEARTBEAT_S
    print(
        f"\noutage {outage_s:.0f}s: {attempts} heartbeat attempts (a heartbeat every "
        f"{HEARTBEAT_S}s would be {heartbeats_due:.0f}), agent CPU {cpu_s:.2f}s"
    )
    # Backoff, not a tight loop: fewer tries than heartbeats were due, and an idle CPU.
    assert 1 <= attempts < heartbeats_due * 0.75
    assert cpu_s < 0.1 * outage_s

    coordinator.start(None if new_db is None else f"sqlite:///{new_db}")
    back_at = time.monotonic()
    wait_for("4 available GPUs again", lambda: _all_available(renter), timeout_s=15)
    print(f"recovered {time.monotonic() - back_at:.1f}s after the coordinator came back")
    if new_db is None:
        assert sorted(agent.state()["gpu_ids"].values()) == old_ids
    else:
        # Registered afresh in the new database. The GPUs are available from their
        # registration on; the agent saves their ids once all four are registered, a moment
        # later, so the state file is read until it has them.
        def saved_new_ids() -> list[str] | None:
            saved = sorted(agent.state()["gpu_ids"].values())
            return saved if len(saved) == 4 and set(saved).isdisjoint(old_ids) else None

        wait_for("the new GPU ids in the agent's state", saved_new_ids, timeout_s=5)
        assert agent.events("miner_registered")[-1]["gpus"] == 4
        assert agent.events("heartbeat_rejected")  # the 404 that triggered it
    assert time.monotonic() - started < outage_s + 30


def test_agent_rides_out_a_coordinator_outage(
    coordinator: Coordinator, renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent().start()
    _outage(10, coordinator, renter, agent)
    # and leases work again
    gpu_id = renter.gpus()[0]["id"]
    renter.credit("10")
    renter.book_ok(gpu_id, duration_s=60)
    wait_for("lease started", lambda: renter.lease_state(gpu_id) == "started", timeout_s=5)


def test_agent_re_registers_when_the_coordinator_lost_its_database(
    tmp_path: Path, coordinator: Coordinator, renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent().start()
    _outage(5, coordinator, renter, agent, new_db=tmp_path / "fresh.db")


@pytest.mark.slow
def test_agent_rides_out_a_one_minute_outage(
    coordinator: Coordinator, renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent().start()
    _outage(60, coordinator, renter, agent)
