"""A booked GPU whose agent vanished past the grace: the booking fails, the renter is refunded."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from tests.e2e.harness import OFFLINE_AFTER_S, Agent, Renter, wait_for


def _four_available(renter: Renter) -> list[dict[str, object]]:
    return wait_for(
        "4 available GPUs",
        lambda: (g := renter.gpus()) and all(x["status"] == "available" for x in g) and g,
    )


@pytest.fixture
def coordinator_env(coordinator_env: dict[str, str]) -> dict[str, str]:
    return {**coordinator_env, "COORDINATOR_LEASE_FAULT_GRACE_S": "2"}


def test_provider_fault_fails_the_booking_and_refunds_the_renter(
    renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent().start()
    gpu_id = str(_four_available(renter)[0]["id"])
    booking = renter.book_ok(gpu_id, duration_s=3600)
    wait_for("lease started", lambda: renter.lease_state(gpu_id) == "started", timeout_s=5)
    agent.kill9()
    order = wait_for(
        "booking failed",
        lambda: (o := renter.order(booking["booking_id"]))["status"] == "failed" and o,
        timeout_s=OFFLINE_AFTER_S + 2 + 10,
    )
    refund = Decimal(order["refund"])
    total = Decimal(booking["total_cost"])
    print(f"\nprovider fault: refund {refund} of {total}")
    assert refund > total * Decimal("0.99")  # full refund of the unused time (nearly all)
    assert Decimal(renter.balance()["escrowed"]) == 0
