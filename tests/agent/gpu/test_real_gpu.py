"""Tier 4: the probe against a real GPU (`make gpu-check`); skipped cleanly without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pynvml
import pytest

from agent.gpu import HealthStatus
from agent.gpu.nvml import NvmlBackend
from tests.support import REPO

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def real_gpu_count() -> int:
    """How many GPUs the real NVML sees; skips the module when NVML or a GPU is missing."""
    if pynvml.nvmlLib is not None:  # a fake was loaded in this process: use a fresh one
        pytest.skip("pynvml already points at a fake library in this process")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no usable NVML here: {exc}")
    try:
        count = int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()
    if count == 0:
        pytest.skip("NVML found no GPU")
    return count


def run_probe() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITBC_AGENT_", "FAKE_NVML"))}
    result = subprocess.run(
        [sys.executable, "-m", "agent", "probe", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_probe_reports_every_real_gpu_with_its_fingerprint(real_gpu_count: int) -> None:
    doc = run_probe()
    assert doc["backend"] == "nvml"
    assert doc["driver_version"]
    assert doc["nvml_version"]
    assert len(doc["gpus"]) == real_gpu_count
    for g in doc["gpus"]:
        assert g["uuid"].startswith("GPU-")
        assert g["name"]
        assert g["memory_total_mib"] > 0
        assert g["compute_capability"] is not None
        assert g["health"] in {"ok", "degraded", "unhealthy", "lost"}
        assert g["memory_used_mib"] is None or 0 <= g["memory_used_mib"] <= g["memory_total_mib"]
        assert g["utilization_pct"] is None or 0 <= g["utilization_pct"] <= 100


def test_backend_samples_real_gpus_repeatedly_and_stays_healthy(real_gpu_count: int) -> None:
    backend = NvmlBackend()
    backend.open()
    try:
        for _ in range(3):
            samples = backend.sample()
            assert len(samples) == real_gpu_count
            for s in samples:
                assert s.health.status is not HealthStatus.LOST, s.health
                assert not s.driver_unresponsive
    finally:
        backend.close()
