"""MIG instances are rentable units end to end: listed by the coordinator, leased by uuid."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.e2e.harness import Agent, Renter, wait_for

A100 = "NVIDIA A100-SXM4-80GB"
MIG_GPU_TOML = f"""
[[gpu.simulated]]
model = "{A100}"
memory_mib = 81920
compute_capability = "8.0"

[[gpu.simulated.mig]]
profile = "3g.40gb"
memory_mib = 40192

[[gpu.simulated.mig]]
profile = "1g.10gb"
memory_mib = 9856

[gpu.prices]
"{A100} MIG 3g.40gb" = "1.25"
"""


def three_available(renter: Renter) -> list[dict[str, Any]] | None:
    gpus = renter.gpus()
    ok = len(gpus) == 3 and all(g["status"] == "available" for g in gpus)
    return gpus if ok else None


def test_a_mig_gpu_is_offered_as_its_instances_and_a_lease_gets_the_mig_uuid(
    renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent(gpus=1, extra_toml=MIG_GPU_TOML).start()
    gpus = wait_for("3 available units", lambda: three_available(renter))
    by_uuid = {g["uuid"]: g for g in gpus}
    host = next(u for u in by_uuid if u.startswith("GPU-sim-")).split("-")[2]
    plain, big, small = f"GPU-sim-{host}-0", f"MIG-sim-{host}-1-0", f"MIG-sim-{host}-1-1"
    assert sorted(by_uuid) == sorted([plain, big, small])  # the MIG parent is not offered
    assert f"GPU-sim-{host}-1" not in by_uuid
    assert (by_uuid[big]["model"], by_uuid[big]["memory_mib"], by_uuid[big]["memory_gb"]) == (
        f"{A100} MIG 3g.40gb",
        40192,
        39,
    )
    assert by_uuid[small]["compute_capability"] == "8.0"
    assert Decimal(str(by_uuid[big]["price_per_hour"])) == Decimal("1.25")
    assert Decimal(str(by_uuid[small]["price_per_hour"])) == Decimal("0.50")
    # Heartbeats keep the instances online with their parent's health; the parent's
    # utilisation is not the instance's, so it is null.
    assert by_uuid[small]["health"] == "ok"
    assert by_uuid[small]["metrics"]["utilization_pct"] is None
    assert by_uuid[plain]["metrics"]["utilization_pct"] is not None

    booking = renter.book_ok(by_uuid[small]["id"], duration_s=600)
    wait_for(
        "lease_state started",
        lambda: renter.lease_state(by_uuid[small]["id"]) == "started",
        timeout_s=5,
    )
    [run] = agent.hook_runs("start")
    assert run[2] == booking["booking_id"]
    assert run[3] == small  # AITBC_GPU_UUID: what CUDA_VISIBLE_DEVICES takes for MIG
    assert run[4] == "1"  # AITBC_GPU_INDEX: the parent's NVML index
    assert agent.state()["leases"][booking["booking_id"]]["gpu_uuid"] == small
