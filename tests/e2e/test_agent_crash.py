"""kill -9 the agent before, during and after on_start: the lease survives, no hook runs twice,
and it ends at end_time even with the coordinator down by then."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest

from tests.e2e.conftest import Coordinator
from tests.e2e.harness import Agent, Renter, wait_for

LEASE_S = 9.0


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _available_gpu(renter: Renter) -> str:
    gpus = wait_for(
        "4 available GPUs", lambda: [g for g in renter.gpus() if g["status"] == "available"]
    )
    assert len(gpus) == 4
    return str(gpus[0]["id"])


@pytest.mark.parametrize("phase", ["before", "during", "after"])
def test_killed_agent_resumes_the_lease_without_rerunning_hooks(
    phase: str, coordinator: Coordinator, renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent().start()
    gpu_id = _available_gpu(renter)

    if phase == "before":
        agent.kill9()  # dead before it could see the booking; the GPU is still "available"
        booking = renter.book_ok(gpu_id, duration_s=LEASE_S)
    elif phase == "during":
        agent.hold("start")
        booking = renter.book_ok(gpu_id, duration_s=LEASE_S)
        wait_for("on_start running", lambda: agent.hook_runs("start"), timeout_s=5)
        assert agent.state()["leases"][booking["booking_id"]]["phase"] == "starting"
        agent.kill9()
        agent.release_hold("start")  # the orphaned hook finishes on its own
        wait_for("orphaned on_start finished", lambda: agent.hook_runs("start", "end"))
    else:
        booking = renter.book_ok(gpu_id, duration_s=LEASE_S)
        wait_for("lease started", lambda: renter.lease_state(gpu_id) == "started", timeout_s=5)
        agent.kill9()
    booking_id = booking["booking_id"]

    agent.start()
    wait_for("lease started", lambda: renter.lease_state(gpu_id) == "started", timeout_s=8)
    assert len(agent.hook_runs("start")) == 1, agent.hooks_log.read_text()
    lease = agent.state()["leases"][booking_id]
    assert lease["phase"] == "started"
    if phase == "during":
        assert "on_start not run again" in lease["detail"]
    assert [e["booking_id"] for e in agent.events("lease_resumed")] == (
        [] if phase == "before" else [booking_id]
    )

    # The coordinator goes away; the agent still ends the lease at end_time, not before.
    coordinator.stop()
    end_at = _epoch(booking["end_time"])
    assert time.time() < end_at, "the lease ended before the coordinator stopped"
    [end_run] = wait_for(
        "on_end", lambda: agent.hook_runs("end"), timeout_s=end_at - time.time() + 5
    )
    assert float(end_run[-1]) >= end_at
    assert agent.proc is not None
    assert agent.proc.poll() is None  # still running without a coordinator
    wait_for(
        "lease stopped locally", lambda: agent.state()["leases"][booking_id]["phase"] == "stopped"
    )

    coordinator.start()  # same database: the owed "stopped" ack goes through
    wait_for(
        "lease_state stopped",
        lambda: renter.order(booking_id)["lease_state"] == "stopped",
        timeout_s=15,
    )
    assert renter.order(booking_id)["status"] == "completed"
    assert len(agent.hook_runs("start")) == 1
    assert len(agent.hook_runs("end")) == 1
