"""Tier 2: the real pynvml (ctypes) over a fake libnvidia-ml.so.1 built from fake_nvml.c."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.gpu import HealthPolicy, HealthStatus
from agent.gpu.nvml import NvmlBackend
from tests.fake_nvml.conftest import OLD_DRIVER_OMITS
from tests.fake_nvml.fakelib import FakeNvmlConfig

REPO = Path(__file__).resolve().parents[2]
MakeConfig = Callable[..., FakeNvmlConfig]
LoadFake = Callable[[Path, FakeNvmlConfig], None]


def probe(
    lib_dir: Path, config: FakeNvmlConfig, *args: str, agent_toml: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "agent", "probe", *args]
    if agent_toml is not None:
        cmd += ["--config", str(agent_toml)]
    env = config.env(lib_dir)
    env = {k: v for k, v in env.items() if not k.startswith("AITBC_AGENT_")}
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


def probe_json(lib_dir: Path, config: FakeNvmlConfig, **kwargs: Any) -> dict[str, Any]:
    result = probe(lib_dir, config, "--json", **kwargs)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)  # exactly one document, nothing else
    return doc


def test_probe_json_reports_exactly_the_configured_gpus(
    fake_lib_dir: Path, nvml_config: MakeConfig
) -> None:
    config = nvml_config(4)
    doc = probe_json(fake_lib_dir, config)
    assert doc["backend"] == "nvml"
    assert doc["driver_version"] == "550.54.15"
    assert doc["cuda_driver_version"] == "12.4"
    assert doc["nvml_version"] == "12.550.54.15"
    configured = config.doc["gpus"]
    assert [g["uuid"] for g in doc["gpus"]] == [g["uuid"] for g in configured]
    for index, (got, want) in enumerate(zip(doc["gpus"], configured, strict=True)):
        assert got["index"] == index
        assert got["name"] == want["name"]
        assert got["memory_total_mib"] == want["memory_total_mib"]
        assert got["memory_used_mib"] == want["memory_used_mib"]
        assert got["compute_capability"] == "9.0"
        assert got["pci_bus_id"] == want["pci_bus_id"]
        assert got["power_limit_w"] == 700.0
        assert got["power_draw_w"] == want["power_draw_mw"] / 1000
        assert got["temperature_c"] == want["temperature_c"]
        assert got["utilization_pct"] == want["utilization_pct"]
        assert got["compute_process_count"] == want["processes"]
        assert got["health"] == "ok"
        assert got["health_reason"] is None
    # Every record has the same, complete set of keys.
    assert len({tuple(g) for g in doc["gpus"]}) == 1


def test_probe_honours_the_exclude_list(
    fake_lib_dir: Path, nvml_config: MakeConfig, tmp_path: Path
) -> None:
    config = nvml_config(3)
    toml = tmp_path / "agent.toml"
    toml.write_text(f'[gpu]\nexclude = [0, "{config.doc["gpus"][2]["uuid"]}"]\n')
    doc = probe_json(fake_lib_dir, config, agent_toml=toml)
    assert [g["index"] for g in doc["gpus"]] == [1]


def test_probe_table_shows_model_uuid_and_health(
    fake_lib_dir: Path, nvml_config: MakeConfig
) -> None:
    config = nvml_config(2)
    result = probe(fake_lib_dir, config)
    assert result.returncode == 0, result.stderr
    for g in config.doc["gpus"]:
        assert g["uuid"] in result.stdout
    assert "NVIDIA H100 80GB HBM3" in result.stdout
    assert "ok" in result.stdout
    assert "probe_finished" not in result.stdout  # logs go to stderr only
    assert "probe_finished" in result.stderr


def test_old_driver_without_versioned_symbols_still_reads_every_field(
    old_driver_lib_dir: Path, nvml_config: MakeConfig
) -> None:
    lib = ctypes.CDLL(str(old_driver_lib_dir / "libnvidia-ml.so.1"))
    for name in OLD_DRIVER_OMITS:
        assert not hasattr(lib, name), f"{name} should be missing from this build"
    config = nvml_config(2)
    config.update_gpu(1, throttle_reasons=0x40, processes=2)
    doc = probe_json(old_driver_lib_dir, config)
    assert doc["cuda_driver_version"] == "12.4"
    g = doc["gpus"][1]
    assert g["temperature_c"] == 41
    assert g["compute_process_count"] == 2
    assert g["memory_used_mib"] == 1025
    assert g["throttle_reasons"] == ["hw_thermal_slowdown"]
    assert g["health"] == "degraded"


def test_unsupported_and_forbidden_fields_are_null_on_that_gpu_only(
    fake_lib_dir: Path, nvml_config: MakeConfig
) -> None:
    config = nvml_config(2)
    doc_cfg = config.doc
    for key in ("fan_pct", "power_draw_mw", "ecc_uncorrected_volatile"):
        del doc_cfg["gpus"][1][key]  # absent → NVML_ERROR_NOT_SUPPORTED
    doc_cfg["gpus"][1]["errors"] = {"nvmlDeviceGetEnforcedPowerLimit": 4}  # NO_PERMISSION
    config.write(doc_cfg)
    doc = probe_json(fake_lib_dir, config)
    broken, fine = doc["gpus"][1], doc["gpus"][0]
    for key in ("fan_pct", "power_draw_w", "ecc_uncorrected_volatile", "power_limit_w"):
        assert broken[key] is None
        assert fine[key] is not None
    assert broken["temperature_c"] == 41
    assert broken["health"] == "ok"


def test_driver_library_mismatch_exits_69_with_its_own_message(
    fake_lib_dir: Path, nvml_config: MakeConfig
) -> None:
    config = nvml_config(1, init_error=18)  # NVML_ERROR_LIB_RM_VERSION_MISMATCH
    result = probe(fake_lib_dir, config, "--json")
    assert result.returncode == 69
    assert result.stdout == ""
    assert "driver/library version mismatch" in result.stderr


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="a real NVML is installed here"
)
def test_library_missing_exits_69_naming_the_library(
    tmp_path: Path, nvml_config: MakeConfig
) -> None:
    empty = tmp_path / "empty-lib"
    empty.mkdir()
    result = probe(empty, nvml_config(1), "--json")
    assert result.returncode == 69
    assert "libnvidia-ml.so.1" in result.stderr


def test_gpu_lost_before_the_probe_is_listed_by_index_as_lost(
    fake_lib_dir: Path, nvml_config: MakeConfig
) -> None:
    config = nvml_config(3)
    config.update_gpu(1, lost=True)
    doc = probe_json(fake_lib_dir, config)
    assert [g["index"] for g in doc["gpus"]] == [0, 1, 2]
    assert [g["health"] for g in doc["gpus"]] == ["ok", "lost", "ok"]
    assert doc["gpus"][1]["uuid"] is None
    assert doc["gpus"][1]["health_reason"] == "gpu_is_lost"


def test_mig_instances_come_through_the_c_structs(
    fake_lib_dir: Path, nvml_config: MakeConfig
) -> None:
    config = nvml_config(1)
    config.update_gpu(
        0,
        name="NVIDIA A100-SXM4-80GB",
        mig_mode=1,
        mig_devices=[
            {
                "uuid": "MIG-11111111-2222-3333-4444-555555555555",
                "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb",
                "memory_total_mib": 40192,
                "gpu_instance_id": 2,
                "compute_instance_id": 0,
            },
            {
                "uuid": "MIG-66666666-2222-3333-4444-555555555555",
                "name": "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
                "memory_total_mib": 9856,
                "gpu_instance_id": 9,
                "compute_instance_id": 0,
            },
        ],
    )
    (gpu,) = probe_json(fake_lib_dir, config)["gpus"]
    assert gpu["mig_mode"] is True
    assert [
        (m["profile"], m["memory_total_mib"], m["gpu_instance_id"]) for m in gpu["mig_devices"]
    ] == [
        ("3g.40gb", 40192, 2),
        ("1g.10gb", 9856, 9),
    ]


# -- in process: the same library under pynvml.nvmlLib, while the fault file changes --------


def statuses(backend: NvmlBackend) -> list[HealthStatus]:
    return [s.health.status for s in backend.sample()]


def test_flipping_one_gpu_to_lost_and_back_recovers_after_n_samples(
    fake_lib_dir: Path, nvml_config: MakeConfig, load_fake_in_process: LoadFake
) -> None:
    config = nvml_config(3)
    load_fake_in_process(fake_lib_dir, config)
    backend = NvmlBackend(policy=HealthPolicy(recover_after_ok_samples=3))
    backend.open()
    try:
        ok, lost = HealthStatus.OK, HealthStatus.LOST
        assert statuses(backend) == [ok, ok, ok]
        config.update_gpu(1, lost=True)
        samples = backend.sample()
        assert [s.health.status for s in samples] == [ok, lost, ok]
        assert samples[1].uuid == config.doc["gpus"][1]["uuid"]
        assert samples[0].temperature_c == 40  # the others still read in full
        config.update_gpu(1, lost=False)
        assert [statuses(backend)[1] for _ in range(3)] == [lost, lost, ok]
        assert backend.sample()[1].power_draw_w == 101.0
    finally:
        backend.close()


def test_xid_from_the_event_set_makes_only_its_gpu_unhealthy(
    fake_lib_dir: Path, nvml_config: MakeConfig, load_fake_in_process: LoadFake
) -> None:
    config = nvml_config(2)
    load_fake_in_process(fake_lib_dir, config)
    backend = NvmlBackend(policy=HealthPolicy(recover_after_ok_samples=2))
    backend.open()
    try:
        config.add_event(1, 79)
        config.add_event(0, 13)  # application Xid: ignored by default
        samples = backend.sample()
        assert samples[1].xid_events == (79,)
        assert samples[1].health.status is HealthStatus.UNHEALTHY
        assert samples[0].xid_events == (13,)
        assert samples[0].health.status is HealthStatus.OK
        assert [statuses(backend)[1] for _ in range(2)] == [HealthStatus.UNHEALTHY, HealthStatus.OK]
    finally:
        backend.close()


def test_a_hung_call_in_the_library_marks_that_gpu_driver_unresponsive(
    fake_lib_dir: Path, nvml_config: MakeConfig, load_fake_in_process: LoadFake
) -> None:
    config = nvml_config(2)
    load_fake_in_process(fake_lib_dir, config)
    backend = NvmlBackend(deadline_s=0.3, policy=HealthPolicy(recover_after_ok_samples=1))
    backend.open()
    try:
        config.update_gpu(0, hang_ms={"nvmlDeviceGetPowerUsage": 800})
        started = time.monotonic()
        samples = backend.sample()
        assert time.monotonic() - started < 0.7
        assert samples[0].driver_unresponsive is True
        assert samples[0].health.reason == "driver_unresponsive"
        assert samples[1].health.status is HealthStatus.OK
        config.update_gpu(0, hang_ms={})
        deadline = time.monotonic() + 5
        while backend.sample()[0].driver_unresponsive:  # until the hung call has returned
            assert time.monotonic() < deadline, "the hung call never returned"
            time.sleep(0.05)
        assert statuses(backend)[0] is HealthStatus.OK
    finally:
        backend.close()


def test_one_gpu_hanging_in_xid_registration_still_opens_the_others(
    fake_lib_dir: Path, nvml_config: MakeConfig, load_fake_in_process: LoadFake
) -> None:
    # Reported: this hang (7 s on GPU 2, past the 5 s default deadline) made `probe` exit 69.
    config = nvml_config(4)
    config.update_gpu(2, hang_ms={"nvmlDeviceGetSupportedEventTypes": 800})
    load_fake_in_process(fake_lib_dir, config)
    backend = NvmlBackend(deadline_s=0.3, policy=HealthPolicy(recover_after_ok_samples=1))
    started = time.monotonic()
    backend.open()
    try:
        assert time.monotonic() - started < 0.7
        assert [g.uuid for g in backend.gpus()] == [g["uuid"] for g in config.doc["gpus"]]
        config.update_gpu(2, hang_ms={})
        config.add_event(1, 79)
        samples = backend.sample()
        assert samples[2].driver_unresponsive is True
        assert samples[2].health.reason == "driver_unresponsive"
        assert samples[1].xid_events == (79,)
        assert [s.health.status for s in samples] == [
            HealthStatus.OK,
            HealthStatus.UNHEALTHY,
            HealthStatus.UNHEALTHY,
            HealthStatus.OK,
        ]
        deadline = time.monotonic() + 5
        while backend.sample()[2].driver_unresponsive:  # until the hung call has returned
            assert time.monotonic() < deadline, "the hung call never returned"
            time.sleep(0.05)
    finally:
        backend.close()
