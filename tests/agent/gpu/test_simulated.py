"""SimulatedBackend: stable uuids, deterministic load, scheduled faults through health."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.gpu import HealthPolicy, HealthStatus, SimulatedBackend, SimulatedFault, SimulatedGpuSpec


def backend(*faults: SimulatedFault, n: int = 2, **kwargs: object) -> SimulatedBackend:
    spec = SimulatedGpuSpec(
        "NVIDIA H100 80GB HBM3", 81559, count=n, utilization_pct=(10, 90), faults=faults
    )
    b = SimulatedBackend(
        [spec],
        host="box",
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        **kwargs,  # type: ignore[arg-type]
    )
    b.open()
    return b


def test_uuids_are_stable_and_named_after_the_host() -> None:
    assert [g.uuid for g in backend().gpus()] == ["GPU-sim-box-0", "GPU-sim-box-1"]
    assert [g.uuid for g in backend().gpus()] == ["GPU-sim-box-0", "GPU-sim-box-1"]


def test_load_script_cycles_deterministically() -> None:
    b = backend()
    utils = [b.sample()[0].utilization_pct for _ in range(4)]
    assert utils == [10, 90, 10, 90]
    one, two = backend(), backend()
    assert [one.sample() for _ in range(3)] == [two.sample() for _ in range(3)]


def test_scheduled_lost_fault_hits_one_gpu_and_recovers() -> None:
    b = backend(
        SimulatedFault("lost", at_sample=2, unit=1, duration_samples=1),
        policy=HealthPolicy(recover_after_ok_samples=2),
    )
    statuses = [[s.health.status for s in b.sample()] for _ in range(4)]
    assert statuses == [
        [HealthStatus.OK, HealthStatus.OK],
        [HealthStatus.OK, HealthStatus.LOST],
        [HealthStatus.OK, HealthStatus.LOST],
        [HealthStatus.OK, HealthStatus.OK],
    ]


def test_xid_fault_is_reported_once_as_an_event() -> None:
    b = backend(SimulatedFault("xid", at_sample=1, xid=48))
    first = b.sample()[0]
    assert first.xid_events == (48,)
    assert first.health.reason == "xid 48"
    assert b.sample()[0].xid_events == ()


def test_exclude_by_index_and_uuid() -> None:
    b = backend(n=3, exclude=[0, "GPU-sim-box-2"])
    assert [g.index for g in b.gpus()] == [1]
