"""MIG instances as rentable units: unit derivation, registration, heartbeat and status views."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from agent.config import AgentSettings
from agent.gpu import (
    GpuInfo,
    GpuSample,
    Health,
    HealthStatus,
    MigDeviceInfo,
    SystemInfo,
)
from agent.link.registration import gpu_registration, miner_registration
from agent.link.units import heartbeat_reports, rentable_units
from agent.service.status import status_rows

A100 = "NVIDIA A100-SXM4-80GB"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SYSTEM = SystemInfo(driver_version="550.54.15", cuda_driver_version="12.4", nvml_version="12.550")


def gpu(index: int, *migs: MigDeviceInfo, uuid: str | None = None) -> GpuInfo:
    return GpuInfo(
        index=index,
        uuid=uuid if uuid is not None else f"GPU-{index}",
        name=A100,
        memory_total_mib=81920,
        compute_capability="8.0",
        pci_bus_id=None,
        power_limit_w=None,
        max_sm_clock_mhz=None,
        max_memory_clock_mhz=None,
        persistence_mode=None,
        mig_mode=bool(migs),
        mig_devices=migs,
    )


def mig(m: int, profile: str = "1g.10gb", memory_mib: int = 9856) -> MigDeviceInfo:
    return MigDeviceInfo(
        index=m,
        uuid=f"MIG-{m}",
        name=f"{A100} MIG {profile}",
        profile=profile,
        memory_total_mib=memory_mib,
        gpu_instance_id=m + 1,
        compute_instance_id=0,
    )


def sample(uuid: str, index: int, status: HealthStatus = HealthStatus.OK) -> GpuSample:
    return GpuSample(
        index=index,
        uuid=uuid,
        sampled_at=NOW,
        utilization_pct=70,
        memory_used_mib=40000,
        temperature_c=61,
        power_draw_w=300.0,
        health=Health(status, None if status is HealthStatus.OK else "xid 79"),
    )


def test_a_mig_gpu_offers_its_instances_and_never_itself() -> None:
    units = rentable_units([gpu(0), gpu(1, mig(0, "3g.40gb", 40192), mig(1))])
    assert [(u.uuid, u.index, u.gpu_uuid, u.name, u.memory_total_mib) for u in units] == [
        ("GPU-0", 0, "GPU-0", A100, 81920),
        ("MIG-0", 1, "GPU-1", f"{A100} MIG 3g.40gb", 40192),
        ("MIG-1", 1, "GPU-1", f"{A100} MIG 1g.10gb", 9856),
    ]
    assert [u.is_mig for u in units] == [False, True, True]
    assert all(u.compute_capability == "8.0" for u in units)


def test_exclude_takes_mig_uuids_gpu_uuids_and_indexes() -> None:
    gpus = [gpu(0), gpu(1, mig(0), mig(1)), gpu(2), gpu(3, uuid="GPU-x")]
    units = rentable_units(gpus, exclude=["MIG-0", 2, "GPU-x"])
    assert [u.uuid for u in units] == ["GPU-0", "MIG-1"]


def test_a_gpu_without_uuid_or_a_mig_gpu_without_instances_offers_nothing() -> None:
    lost = replace(gpu(0), uuid=None)
    empty_mig = replace(gpu(1), mig_mode=True)  # MIG on, no instance created: no CUDA work
    assert rentable_units([lost, empty_mig]) == []


def test_a_mig_instance_registers_with_its_own_uuid_memory_name_and_price() -> None:
    settings = AgentSettings(
        gpu={"price_per_hour": "0.50", "prices": {f"{A100} MIG 3g.40gb": "1.25"}},
        agent={"region": "eu-west"},
    )
    big, small = rentable_units([gpu(1, mig(0, "3g.40gb", 40192), mig(1))])
    reg = gpu_registration(big, SYSTEM, settings)
    assert (reg.uuid, reg.name, reg.memory_mib, reg.memory_gb) == (
        "MIG-0",
        f"{A100} MIG 3g.40gb",
        40192,
        39,
    )
    assert (reg.compute_capability, reg.driver_version, reg.cuda_version) == (
        "8.0",
        "550.54.15",
        "12.4",
    )
    assert str(reg.price_per_hour) == "1.25"
    assert str(gpu_registration(small, SYSTEM, settings).price_per_hour) == "0.50"


def test_miner_capabilities_list_units_with_their_parent() -> None:
    req = miner_registration(rentable_units([gpu(0), gpu(1, mig(0), mig(1))]), SYSTEM, None)
    assert req.concurrency == 3
    caps = req.capabilities["gpus"]
    assert [c["uuid"] for c in caps] == ["GPU-0", "MIG-0", "MIG-1"]
    assert "parent_uuid" not in caps[0]
    assert (caps[1]["parent_uuid"], caps[1]["mig_profile"], caps[1]["index"]) == (
        "GPU-1",
        "1g.10gb",
        1,
    )


def test_heartbeat_reports_a_mig_unit_with_its_parents_health_and_no_borrowed_load() -> None:
    units = rentable_units([gpu(0), gpu(1, mig(0), mig(1))])
    samples = {
        "GPU-0": sample("GPU-0", 0),
        "GPU-1": sample("GPU-1", 1, HealthStatus.UNHEALTHY),
    }
    ids = {"GPU-0": "g0", "MIG-0": "m0", "MIG-1": "m1", "GPU-1": "stale-parent-id"}
    reports = heartbeat_reports(units, samples, ids)
    assert [(r.gpu_id, r.uuid, r.health) for r in reports] == [
        ("g0", "GPU-0", "ok"),
        ("m0", "MIG-0", "unhealthy"),
        ("m1", "MIG-1", "unhealthy"),
    ]
    whole, instance = reports[0], reports[1]
    assert (whole.utilization_pct, whole.memory_used_mib, whole.power_draw_w) == (70, 40000, 300)
    assert instance.health_reason == "xid 79"
    # The parent's load, memory and power are the whole card's, not the instance's.
    assert (instance.utilization_pct, instance.memory_used_mib, instance.power_draw_w) == (
        None,
        None,
        None,
    )
    assert instance.temperature_c == 61  # one die: its temperature is the instance's too


def test_status_rows_are_per_unit() -> None:
    units = rentable_units([gpu(1, mig(0), mig(1))])
    rows = status_rows(units, {"GPU-1": sample("GPU-1", 1)}, {"MIG-0": "m0"})
    assert [(r["uuid"], r["gpu_id"], r["parent_uuid"], r["mig_profile"]) for r in rows] == [
        ("MIG-0", "m0", "GPU-1", "1g.10gb"),
        ("MIG-1", None, "GPU-1", "1g.10gb"),
    ]
    assert rows[0]["health"] == "ok"
    assert rows[0]["utilization_pct"] is None
