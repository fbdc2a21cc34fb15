"""The miner protocol (docs/miner-protocol.md), coordinator side: leases, acks, leave, faults."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from fastapi.testclient import TestClient

from coordinator_stub.core.clock import rfc3339
from tests.coordinator.miner_support import (
    account,
    ack,
    book,
    credit,
    gpu_status,
    heartbeat,
    ok,
    online_gpu,
)
from tests.support import ADMIN_KEY, CLIENT_KEY, MINER2_KEY, MINER_KEY, FakeClock, auth

GRACE_S = 300  # settings default lease_fault_grace_s
OFFLINE_S = 30  # settings default offline_after_s


def _sweep(client: TestClient) -> None:
    client.app.state.sweeper.run_once()  # type: ignore[attr-defined]


def _full_refund(cost: Decimal, unused_s: float, duration_s: float) -> Decimal:
    return (cost * Decimal(str(unused_s)) / Decimal(str(duration_s))).quantize(
        Decimal("0.00000001"), rounding=ROUND_HALF_EVEN
    )


@pytest.fixture
def booked(client: TestClient, clock: FakeClock) -> dict[str, str]:
    """host-01's GPU booked by alice for one hour (at whatever the pricing engine quotes)."""
    gpu_id = online_gpu(client)
    credit(client, "alice", "100")
    booking = book(client, gpu_id, hours=1.0)
    assert Decimal(booking["total_cost"]) > 0
    return {"gpu_id": gpu_id, "booking_id": booking["booking_id"], "cost": booking["total_cost"]}


def test_heartbeat_returns_the_desired_lease_of_a_new_booking(
    client: TestClient, clock: FakeClock
) -> None:
    gpu_id = online_gpu(client, uuid="GPU-aaaa")
    before = heartbeat(client)
    assert before["leases"] == []
    credit(client)
    booking = book(client, gpu_id, hours=2)
    after = heartbeat(client)
    assert after["lease_version"] > before["lease_version"]
    assert after["leases"] == [
        {
            "booking_id": booking["booking_id"],
            "gpu_id": gpu_id,
            "gpu_uuid": "GPU-aaaa",
            "client_id": "alice",
            "start_time": rfc3339(clock.now),
            "end_time": rfc3339(clock.now + timedelta(hours=2)),
            "generation": 1,
            "state": "active",
        }
    ]
    # Another miner never sees host-01's leases.
    ok(client.post("/v1/miners/register", json={}, headers=auth(MINER2_KEY)))
    assert heartbeat(client, key=MINER2_KEY)["leases"] == []


def test_release_ends_the_lease_with_a_new_generation_until_the_agent_stops_it(
    client: TestClient, booked: dict[str, str]
) -> None:
    version = heartbeat(client)["lease_version"]
    resp = client.post(f"/v1/marketplace/gpu/{booked['gpu_id']}/release", headers=auth(CLIENT_KEY))
    assert ok(resp)["status"] == "released"
    hb = heartbeat(client)
    assert hb["lease_version"] > version
    [lease] = hb["leases"]
    assert (lease["booking_id"], lease["state"], lease["generation"]) == (
        booked["booking_id"],
        "ended",
        2,
    )
    acked = ok(ack(client, booked["booking_id"], 2, "stopped"))
    assert acked == {
        "status": "ok",
        "booking_id": booked["booking_id"],
        "generation": 2,
        "lease_state": "stopped",
        "booking_status": "released",
    }
    assert heartbeat(client)["leases"] == []
    # A repeated ack (a retry after a lost answer) is idempotent.
    assert ok(ack(client, booked["booking_id"], 2, "stopped"))["lease_state"] == "stopped"


def test_a_lease_past_its_end_time_is_ended_with_the_generation_settlement_gives_it(
    client: TestClient, clock: FakeClock, booked: dict[str, str]
) -> None:
    clock.advance(hours=1, seconds=1)
    unsettled = heartbeat(client)["leases"]
    assert [(x["state"], x["generation"]) for x in unsettled] == [("ended", 2)]
    # The agent may stop it before the sweeper settles the booking...
    assert ok(ack(client, booked["booking_id"], 2, "started"))["booking_status"] == "completed"
    _sweep(client)
    settled = heartbeat(client)["leases"]
    # ...and settlement does not move the generation: the desired state did not change.
    assert [(x["state"], x["generation"]) for x in settled] == [("ended", 2)]
    assert ok(ack(client, booked["booking_id"], 2, "stopped"))["booking_status"] == "completed"
    assert heartbeat(client)["leases"] == []


def test_started_ack_records_the_lease_state_and_nothing_else(
    client: TestClient, booked: dict[str, str]
) -> None:
    money_before = account(client, CLIENT_KEY)
    acked = ok(ack(client, booked["booking_id"], 1, "started", detail="hook ok"))
    assert (acked["lease_state"], acked["booking_status"], acked["generation"]) == (
        "started",
        "active",
        1,
    )
    details = ok(client.get(f"/v1/marketplace/gpu/{booked['gpu_id']}"))
    assert details["status"] == "booked"
    assert details["current_booking"]["lease_state"] == "started"
    assert account(client, CLIENT_KEY) == money_before
    [lease] = heartbeat(client)["leases"]
    assert (lease["state"], lease["generation"]) == ("active", 1)


def test_a_stale_or_unknown_generation_is_409(client: TestClient, booked: dict[str, str]) -> None:
    ok(client.post(f"/v1/marketplace/gpu/{booked['gpu_id']}/release", headers=auth(CLIENT_KEY)))
    stale = ack(client, booked["booking_id"], 1, "started")
    assert stale.status_code == 409
    assert "generation 2" in stale.json()["detail"]
    assert ack(client, booked["booking_id"], 3, "stopped").status_code == 409
    # The stale ack recorded nothing: the lease is still waiting for its stop.
    [lease] = heartbeat(client)["leases"]
    assert (lease["state"], lease["generation"]) == ("ended", 2)


def test_rejected_ack_fails_the_booking_with_a_full_refund_and_frees_the_gpu(
    client: TestClient, clock: FakeClock, booked: dict[str, str]
) -> None:
    clock.advance(minutes=15)
    acked = ok(ack(client, booked["booking_id"], 1, "rejected", detail="gpu unhealthy"))
    assert (acked["booking_status"], acked["lease_state"], acked["generation"]) == (
        "failed",
        "rejected",
        2,
    )
    alice = account(client, CLIENT_KEY)
    refund = _full_refund(Decimal(booked["cost"]), 45 * 60, 3600)
    assert refund == Decimal(booked["cost"]) * 3 / 4
    assert alice == {
        "balance": Decimal(100) - Decimal(booked["cost"]) + refund,
        "escrowed": Decimal(0),
        "staked": Decimal(0),
    }
    assert account(client, MINER_KEY)["balance"] == Decimal(booked["cost"]) - refund
    assert heartbeat(client)["leases"] == []  # a rejected lease needs no stop
    assert gpu_status(client, booked["gpu_id"]) == "available"
    # Rejecting again is idempotent; starting a rejected lease is refused.
    assert ok(ack(client, booked["booking_id"], 2, "rejected"))["booking_status"] == "failed"
    assert ack(client, booked["booking_id"], 2, "started").status_code == 409
    assert account(client, CLIENT_KEY) == alice


def test_acks_are_only_for_the_gpus_own_miner(client: TestClient, booked: dict[str, str]) -> None:
    ok(client.post("/v1/miners/register", json={}, headers=auth(MINER2_KEY)))
    foreign = ack(client, booked["booking_id"], 1, "rejected", key=MINER2_KEY)
    assert foreign.status_code == 404
    assert ack(client, "bk_0000000000000000", 1, "started").status_code == 404
    assert ack(client, booked["booking_id"], 1, "started", key=CLIENT_KEY).status_code == 403
    anonymous = client.post(
        f"/v1/miners/leases/{booked['booking_id']}/ack", json={"generation": 1, "state": "started"}
    )
    assert anonymous.status_code == 401
    bad_state = ack(client, booked["booking_id"], 1, "running")
    assert bad_state.status_code == 422
    assert gpu_status(client, booked["gpu_id"]) == "booked"


def test_agent_restart_reporting_leases_never_changes_a_generation(
    client: TestClient, clock: FakeClock, booked: dict[str, str]
) -> None:
    first = heartbeat(
        client,
        agent={"instance_id": "a1", "boot_id": "b1", "seq": 1, "version": "0.1.0"},
        leases=[{"booking_id": booked["booking_id"], "generation": 1, "state": "started"}],
    )
    # The agent restarts: registers again, reports nothing, then reports nonsense.
    ok(client.post("/v1/miners/register", json={}, headers=auth(MINER_KEY)))
    clock.advance(seconds=5)
    restarted = heartbeat(client, agent={"instance_id": "a2", "boot_id": "b2", "seq": 1})
    confused = heartbeat(
        client,
        agent={"instance_id": "a2", "boot_id": "b2", "seq": 2},
        leases=[{"booking_id": booked["booking_id"], "generation": 7, "state": "stopped"}],
    )
    for hb in (restarted, confused):
        assert hb["lease_version"] == first["lease_version"]
        assert hb["leases"] == first["leases"]
    assert first["leases"][0]["generation"] == 1
    assert gpu_status(client, booked["gpu_id"]) == "booked"


def test_deregister_takes_gpus_offline_at_once_and_heartbeats_404_until_register(
    client: TestClient, booked: dict[str, str]
) -> None:
    ok(client.post("/v1/miners/register", json={}, headers=auth(MINER2_KEY)))
    assert client.delete("/v1/miners/host-01", headers=auth(MINER2_KEY)).status_code == 403
    assert client.delete("/v1/miners/host-01", headers=auth(CLIENT_KEY)).status_code == 403
    assert client.delete("/v1/miners/nobody", headers=auth(ADMIN_KEY)).status_code == 404
    left = ok(client.delete("/v1/miners/host-01", headers=auth(MINER_KEY)))
    assert (left["status"], left["miner_id"], left["offline_gpus"]) == (
        "deregistered",
        "host-01",
        1,
    )
    assert gpu_status(client, booked["gpu_id"]) == "offline"
    resp = client.post("/v1/miners/heartbeat", json={}, headers=auth(MINER_KEY))
    assert (resp.status_code, resp.json()) == (404, {"detail": "miner not registered"})
    # Leaving twice is fine and keeps the first moment; an admin may make any miner leave.
    again = ok(client.delete("/v1/miners/host-01", headers=auth(ADMIN_KEY)))
    assert again["deregistered_at"] == left["deregistered_at"]
    # The booking is not ended by a leave (a restarting agent must not kill tenants' work).
    ok(client.post("/v1/miners/register", json={}, headers=auth(MINER_KEY)))
    [lease] = heartbeat(client)["leases"]
    assert (lease["booking_id"], lease["state"]) == (booked["booking_id"], "active")
    assert gpu_status(client, booked["gpu_id"]) == "booked"


def test_a_booked_gpu_silent_past_the_grace_fails_its_booking_with_a_full_refund(
    client: TestClient, clock: FakeClock, booked: dict[str, str]
) -> None:
    _sweep(client)  # the sweeper is watching from the booking's start
    clock.advance(seconds=OFFLINE_S + GRACE_S)  # offline for exactly the grace: not yet
    _sweep(client)
    assert gpu_status(client, booked["gpu_id"]) == "offline"
    assert account(client, CLIENT_KEY)["escrowed"] == Decimal(booked["cost"])
    clock.advance(seconds=1)
    _sweep(client)
    order = ok(client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)))[0]
    assert (order["booking_id"], order["status"]) == (booked["booking_id"], "failed")
    refund = _full_refund(Decimal(booked["cost"]), 3600 - (OFFLINE_S + GRACE_S + 1), 3600)
    assert Decimal(order["refund"]) == refund
    assert account(client, CLIENT_KEY) == {
        "balance": Decimal(100) - Decimal(booked["cost"]) + refund,
        "escrowed": Decimal(0),
        "staked": Decimal(0),
    }
    # The agent, when it comes back, is told to stop the lease.
    [lease] = heartbeat(client)["leases"]
    assert (lease["state"], lease["generation"]) == ("ended", 2)


def test_an_unhealthy_gpu_faults_from_when_it_went_unhealthy(
    client: TestClient, clock: FakeClock, booked: dict[str, str]
) -> None:
    gpu = booked["gpu_id"]
    _sweep(client)
    clock.advance(seconds=60)
    heartbeat(client, gpus=[{"gpu_id": gpu, "health": "unhealthy", "health_reason": "xid 79"}])
    clock.advance(seconds=200)
    heartbeat(client, gpus=[{"gpu_id": gpu, "health": "ok"}])  # recovered: the clock restarts
    clock.advance(seconds=10)
    heartbeat(client, gpus=[{"gpu_id": gpu, "health": "lost"}])
    for _ in range(3):  # the agent keeps heartbeating; the GPU stays lost
        clock.advance(seconds=100)
        heartbeat(client, gpus=[{"gpu_id": gpu, "health": "lost"}])
        _sweep(client)
    assert gpu_status(client, gpu) == "offline"
    # 300 s since it went lost: not past the grace yet.
    assert account(client, CLIENT_KEY)["escrowed"] == Decimal(booked["cost"])
    clock.advance(seconds=1)
    heartbeat(client, gpus=[{"gpu_id": gpu, "health": "lost"}])
    _sweep(client)
    order = ok(client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)))[0]
    assert order["status"] == "failed"
    assert Decimal(order["refund"]) == _full_refund(Decimal(booked["cost"]), 3600 - 571, 3600)


def test_coordinator_downtime_does_not_count_toward_a_fault(
    client: TestClient, clock: FakeClock, booked: dict[str, str]
) -> None:
    """No heartbeat can land while the coordinator is down, so it must not blame the miners."""
    clock.advance(seconds=2 * GRACE_S)  # the sweeper never ran: as if the coordinator was down
    _sweep(client)
    assert account(client, CLIENT_KEY)["escrowed"] == Decimal(booked["cost"])
    clock.advance(seconds=GRACE_S + 1)  # still silent a full grace after the coordinator is back
    _sweep(client)
    assert account(client, CLIENT_KEY)["escrowed"] == Decimal(0)
    assert gpu_status(client, booked["gpu_id"]) == "offline"


def test_a_miner_that_left_and_stays_away_faults_its_bookings(
    client: TestClient, clock: FakeClock, booked: dict[str, str]
) -> None:
    _sweep(client)
    clock.advance(seconds=5)
    ok(client.delete("/v1/miners/host-01", headers=auth(MINER_KEY)))
    clock.advance(seconds=GRACE_S)
    _sweep(client)
    assert account(client, CLIENT_KEY)["escrowed"] == Decimal(booked["cost"])
    clock.advance(seconds=1)
    _sweep(client)
    order = ok(client.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY)))[0]
    assert order["status"] == "failed"
    assert Decimal(order["refund"]) == _full_refund(Decimal(booked["cost"]), 3600 - 306, 3600)


def test_heartbeat_ignores_gpus_of_other_miners_and_wrong_uuids(
    client: TestClient, booked: dict[str, str]
) -> None:
    ok(client.post("/v1/miners/register", json={}, headers=auth(MINER2_KEY)))
    other = heartbeat(client, key=MINER2_KEY, gpus=[{"gpu_id": booked["gpu_id"], "health": "lost"}])
    assert other["ignored_gpus"] == [booked["gpu_id"]]
    wrong = heartbeat(
        client, gpus=[{"gpu_id": booked["gpu_id"], "uuid": "GPU-x", "health": "lost"}]
    )
    assert wrong["ignored_gpus"] == [booked["gpu_id"]]
    assert gpu_status(client, booked["gpu_id"]) == "booked"
    metrics = heartbeat(
        client, gpus=[{"gpu_id": booked["gpu_id"], "utilization_pct": 87.5, "temperature_c": 61}]
    )
    assert metrics["ignored_gpus"] == []
    details = ok(client.get(f"/v1/marketplace/gpu/{booked['gpu_id']}"))
    assert details["metrics"]["utilization_pct"] == 87.5
    assert details["metrics"]["temperature_c"] == 61
