"""The network between agent and coordinator breaks (tests/e2e/faultproxy.py) during each
phase of a lease. Whatever happens: no lease is lost or run twice, the money adds up, and the
GPUs end in the right status once the network heals."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from coordinator_stub.db.engine import Database
from coordinator_stub.ledger.transfers import conservation
from tests.e2e.conftest import Coordinator
from tests.e2e.faultproxy import FaultProxy
from tests.e2e.harness import Agent, Renter, wait_for

HEAL_S = 15  # the agent's backoff after a long outage, then a heartbeat and the acks


@pytest.fixture
def proxy(coordinator: Coordinator) -> Iterator[FaultProxy]:
    p = FaultProxy(coordinator.port)
    yield p
    p.close()


@pytest.fixture
def host(proxy: FaultProxy, renter: Renter, make_agent: Callable[..., Agent]) -> Agent:
    agent = make_agent(coordinator_url=proxy.url).start()
    wait_for("4 available GPUs", lambda: [g["status"] for g in renter.gpus()] == ["available"] * 4)
    renter.credit()
    return agent


def money_adds_up(coordinator: Coordinator) -> bool:
    db = Database(coordinator.db_url)
    try:
        with db.read() as session:
            return conservation(session).holds
    finally:
        db.dispose()


def status_of(renter: Renter, gpu_id: str) -> str:
    return str(renter.gpu(gpu_id)["status"])


def test_a_lease_partitioned_while_running_ends_on_time_and_its_ack_arrives_after(
    host: Agent, proxy: FaultProxy, renter: Renter, coordinator: Coordinator
) -> None:
    gpu, other = (g["id"] for g in renter.gpus()[:2])
    booking = renter.book_ok(gpu, duration_s=5)
    wait_for("lease started", lambda: renter.lease_state(gpu) == "started", timeout_s=5)

    proxy.set("blackhole")  # packets vanish: requests hang until the agent's timeout
    wait_for("the host reads offline", lambda: status_of(renter, other) == "offline")
    refused = renter.book(other, duration_s=60)
    assert refused.status_code == 409
    assert "offline" in refused.json()["detail"]
    # The agent enforces the end itself, coordinator or not.
    wait_for("on_end at end_time", lambda: host.hook_runs("end", "end"), timeout_s=10)
    assert renter.order(booking["booking_id"])["lease_state"] == "started"  # not heard yet

    proxy.set("pass")
    wait_for(
        "the stopped ack",
        lambda: renter.order(booking["booking_id"])["lease_state"] == "stopped",
        timeout_s=HEAL_S,
    )
    wait_for(
        "all available",
        lambda: {g["status"] for g in renter.gpus()} == {"available"},
        timeout_s=HEAL_S,
    )
    assert len(host.hook_runs("start")) == 1
    assert len(host.hook_runs("end")) == 1
    assert renter.order(booking["booking_id"])["status"] == "completed"
    assert money_adds_up(coordinator)


def test_a_booking_made_during_a_partition_starts_once_it_heals(
    host: Agent, proxy: FaultProxy, renter: Renter, coordinator: Coordinator
) -> None:
    gpu = renter.gpus()[0]["id"]
    proxy.set("refuse")  # connections reset: the agent knows at once
    booking = renter.book_ok(gpu, duration_s=120)  # the GPU still reads available: booked now
    wait_for("the host reads offline", lambda: status_of(renter, gpu) == "offline")
    assert host.hook_runs("start") == []  # it cannot know yet
    proxy.set("pass")
    wait_for("lease started", lambda: renter.lease_state(gpu) == "started", timeout_s=HEAL_S)
    assert [run[2] for run in host.hook_runs("start")] == [booking["booking_id"]]
    # The ack may come back before the next heartbeat (each has its own retry clock).
    wait_for("booked", lambda: status_of(renter, gpu) == "booked", timeout_s=HEAL_S)
    renter.release(gpu)
    wait_for("on_end", lambda: host.hook_runs("end", "end"), timeout_s=5)
    assert len(host.hook_runs("start")) == 1
    assert money_adds_up(coordinator)


def test_responses_cut_mid_way_lose_and_repeat_nothing(
    host: Agent, proxy: FaultProxy, renter: Renter, coordinator: Coordinator
) -> None:
    gpu = renter.gpus()[0]["id"]
    proxy.set("cut", cut_after=60)  # every answer breaks inside its headers or body
    booking = renter.book_ok(gpu, duration_s=120)
    wait_for("a cut answer", lambda: host.events("coordinator_unreachable"), timeout_s=10)
    proxy.set("pass", delay_s=0.05)  # then a slow but whole network
    wait_for("lease started", lambda: renter.lease_state(gpu) == "started", timeout_s=HEAL_S)
    renter.release(gpu)
    wait_for(
        "the stopped ack",
        lambda: renter.order(booking["booking_id"])["lease_state"] == "stopped",
        timeout_s=HEAL_S,
    )
    assert len(host.hook_runs("start")) == 1
    assert len(host.hook_runs("end")) == 1
    assert status_of(renter, gpu) == "available"
    assert money_adds_up(coordinator)
