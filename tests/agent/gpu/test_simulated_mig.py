"""Simulated GPUs with MIG instances: MIG mode on, stable MIG uuids, from the config file."""

from __future__ import annotations

from pathlib import Path

from agent.config import load_settings
from agent.gpu import SimulatedBackend, SimulatedGpuSpec, SimulatedMigSpec, make_backend

A100 = "NVIDIA A100-SXM4-80GB"


def test_simulated_gpu_with_mig_instances_has_mig_mode_and_stable_mig_uuids() -> None:
    spec = SimulatedGpuSpec(
        A100,
        81920,
        count=2,
        mig=(SimulatedMigSpec("3g.40gb", 40192), SimulatedMigSpec("1g.10gb", 9856)),
    )
    b = SimulatedBackend([spec], host="box", exclude=["MIG-sim-box-1-0"])
    b.open()
    first, second = b.gpus()
    assert first.mig_mode is True
    assert [(m.uuid, m.profile, m.memory_total_mib) for m in first.mig_devices] == [
        ("MIG-sim-box-0-0", "3g.40gb", 40192),
        ("MIG-sim-box-0-1", "1g.10gb", 9856),
    ]
    assert first.mig_devices[1].name == f"{A100} MIG 1g.10gb"
    # An excluded MIG uuid is never offered; its sibling and its parent stay.
    assert [m.uuid for m in second.mig_devices] == ["MIG-sim-box-1-1"]


def test_simulated_mig_instances_come_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[gpu]\nbackend = "simulated"\n'
        f'[[gpu.simulated]]\nmodel = "{A100}"\nmemory_mib = 81920\n'
        '[[gpu.simulated.mig]]\nprofile = "1g.10gb"\nmemory_mib = 9856\n'
        '[[gpu.simulated.mig]]\nprofile = "2g.20gb"\nmemory_mib = 19968\n'
    )
    s = load_settings(path)
    backend = make_backend(s.gpu, s.health, host="h")
    backend.open()
    [info] = backend.gpus()
    assert info.mig_mode is True
    assert [(m.uuid, m.profile) for m in info.mig_devices] == [
        ("MIG-sim-h-0-0", "1g.10gb"),
        ("MIG-sim-h-0-1", "2g.20gb"),
    ]
