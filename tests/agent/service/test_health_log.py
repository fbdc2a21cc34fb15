"""An operator sees a GPU go unhealthy and come back in the log: one line each, with what
identifies the card (uuid, index, PCI bus id) and why (reason, Xid)."""

from __future__ import annotations

import structlog

from agent.gpu import HealthPolicy, SimulatedBackend, SimulatedGpuSpec
from agent.gpu.simulated import SimulatedFault
from agent.service.heartbeat import log_health_changes


def test_an_xid_79_and_its_recovery_leave_one_line_each() -> None:
    fault = SimulatedFault(kind="xid", at_sample=2, unit=1, xid=79)
    backend = SimulatedBackend(
        [
            SimulatedGpuSpec(
                model="NVIDIA H100 80GB HBM3", memory_mib=81559, count=2, faults=(fault,)
            )
        ],
        host="vm",
        policy=HealthPolicy.of([13, 31, 43, 45, 68, 109], 3),
    )
    backend.open()
    gpus = {g.uuid: g for g in backend.gpus() if g.uuid is not None}
    previous: dict = {}
    with structlog.testing.capture_logs() as logs:
        for _ in range(8):
            samples = {s.uuid: s for s in backend.sample() if s.uuid is not None}
            log_health_changes(previous, samples, gpus)
            previous = samples
    backend.close()
    events = [e for e in logs if e["event"] in ("gpu_health_changed", "gpu_recovered")]
    assert [e["event"] for e in events] == ["gpu_health_changed", "gpu_recovered"]
    down, up = events
    sick = next(g for g in gpus.values() if g.index == 1)
    assert down["uuid"] == sick.uuid
    assert (down["index"], down["pci_bus_id"]) == (1, sick.pci_bus_id)
    assert (down["previous"], down["health"]) == ("ok", "unhealthy")
    assert down["xids"] == [79]
    assert "79" in down["reason"]
    assert down["log_level"] == "error"
    assert (up["uuid"], up["previous"], up["health"], up["log_level"]) == (
        sick.uuid,
        "unhealthy",
        "ok",
        "info",
    )
