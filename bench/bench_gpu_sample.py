"""Cost of one full sample of 8 GPUs: NvmlBackend over the real pynvml and the fake library.

Prints one JSON document. Figures (median and p90 microseconds per full 8-GPU sample):
- `nvml_backend_fake_lib`: `NvmlBackend.sample()` — every field of every GPU through the real
  pynvml ctypes path into tests/fake_nvml's libnvidia-ml.so.1, per-GPU worker threads,
  deadlines, health — what the agent pays per heartbeat;
- `nvml_backend_fake_lib_old_driver`: the same against a build without the versioned entry
  points, so every fallback is taken (after the first, cached, lookup);
- `raw_pynvml_fake_lib`: the same NVML calls made directly in one thread, no backend: the floor;
- `simulated_backend`: SimulatedBackend, for scale;
- `nvml_backend_real_gpu`: only where NVML finds a real GPU (then all of its GPUs, not 8).

Usage: python bench/bench_gpu_sample.py [--runs N] [--gpus N]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pynvml  # noqa: E402

from agent.gpu import HealthPolicy, SimulatedBackend, SimulatedGpuSpec  # noqa: E402
from agent.gpu.nvml import NvmlBackend  # noqa: E402
from tests.fake_nvml.conftest import OLD_DRIVER_OMITS  # noqa: E402
from tests.fake_nvml.fakelib import FakeNvmlConfig, build, document  # noqa: E402


def timed(fn: Callable[[], object], runs: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1000)
    times.sort()
    return {
        "median_us": round(statistics.median(times), 1),
        "p90_us": round(times[int(len(times) * 0.9) - 1], 1),
        "min_us": round(times[0], 1),
        "runs": runs,
    }


def use_library(lib: Path | None) -> None:
    pynvml._nvmlGetFunctionPointer_cache.clear()
    pynvml.nvmlLib = None if lib is None else ctypes.CDLL(str(lib / "libnvidia-ml.so.1"))


def bench_backend(runs: int) -> dict[str, float]:
    backend = NvmlBackend(policy=HealthPolicy())
    backend.open()
    try:
        return timed(backend.sample, runs)
    finally:
        backend.close()


def raw_sample(handles: list[Any]) -> None:
    nv = pynvml
    for h in handles:
        nv.nvmlDeviceGetUtilizationRates(h)
        nv.nvmlDeviceGetMemoryInfo(h, nv.nvmlMemory_v2)
        nv.nvmlDeviceGetTemperatureV(h, nv.NVML_TEMPERATURE_GPU)
        nv.nvmlDeviceGetPowerUsage(h)
        nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
        nv.nvmlDeviceGetFanSpeed(h)
        nv.nvmlDeviceGetPerformanceState(h)
        nv.nvmlDeviceGetTotalEccErrors(
            h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC
        )
        nv.nvmlDeviceGetCurrentClocksEventReasons(h)
        nv.nvmlDeviceGetComputeRunningProcesses_v3(h)


def bench_raw(runs: int) -> dict[str, float]:
    pynvml.nvmlInit()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        return timed(lambda: raw_sample(handles), runs)
    finally:
        pynvml.nvmlShutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--gpus", type=int, default=8)
    args = parser.parse_args()

    result: dict[str, Any] = {
        "bench": "gpu_sample",
        "gpus": args.gpus,
        "unit": "microseconds per full sample of all GPUs",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pynvml": getattr(pynvml, "__version__", None) or _dist_version("nvidia-ml-py"),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        config = FakeNvmlConfig(Path(tmp) / "fake-nvml.json", document(args.gpus))
        os.environ["FAKE_NVML_CONFIG"] = str(config.path)
        use_library(build())
        result["nvml_backend_fake_lib"] = bench_backend(args.runs)
        result["raw_pynvml_fake_lib"] = bench_raw(args.runs)
        use_library(build(OLD_DRIVER_OMITS))
        result["nvml_backend_fake_lib_old_driver"] = bench_backend(args.runs)
        use_library(None)
    sim = SimulatedBackend([SimulatedGpuSpec("NVIDIA H100 80GB HBM3", 81559, count=args.gpus)])
    sim.open()
    result["simulated_backend"] = timed(sim.sample, args.runs)
    result["nvml_backend_real_gpu"] = _real_gpu(args.runs)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _real_gpu(runs: int) -> dict[str, Any] | None:
    os.environ.pop("FAKE_NVML_CONFIG", None)
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
    if not count:
        return None
    return {"gpus": count, **bench_backend(runs)}


if __name__ == "__main__":
    main()
