"""Build and drive the fake libnvidia-ml.so.1 (fake_nvml.c) for tier-2 tests and the bench.

`build(omit=...)` compiles the library with `cc` into tests/.build/fake_nvml/<key>/ (see
`tests.clib.build_shared`: once per variant and source change, atomic). `FakeNvmlConfig`
writes the JSON the library re-reads when the file changes.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.clib import build_shared

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fake_nvml.c"
BUILD_ROOT = HERE.parent / ".build" / "fake_nvml"
LIBRARY_NAME = "libnvidia-ml.so.1"
CONFIG_ENV = "FAKE_NVML_CONFIG"


def build(omit: Iterable[str] = ()) -> Path:
    """The directory holding a built fake libnvidia-ml.so.1 without the `omit` entry points."""
    return build_shared(
        SOURCE, LIBRARY_NAME, [f"-DOMIT_{name}" for name in sorted(set(omit))], BUILD_ROOT
    )


def gpu(index: int, **overrides: Any) -> dict[str, Any]:
    """A fully readable H100-like GPU record for the config file."""
    record: dict[str, Any] = {
        "uuid": f"GPU-{index:08x}-fake-0000-0000-{index:012x}",
        "name": "NVIDIA H100 80GB HBM3",
        "memory_total_mib": 81559,
        "memory_used_mib": 1024 + index,
        "utilization_pct": 10 * index % 100,
        "memory_utilization_pct": 5,
        "temperature_c": 40 + index,
        "power_draw_mw": 100_000 + 1000 * index,
        "power_limit_mw": 700_000,
        "sm_clock_mhz": 1980,
        "max_sm_clock_mhz": 1980,
        "max_memory_clock_mhz": 2619,
        "fan_pct": 30,
        "pstate": 0,
        "ecc_uncorrected_volatile": 0,
        "throttle_reasons": 0,
        "processes": index % 3,
        "pci_bus_id": f"00000000:{0x18 + index:02X}:00.0",
        "pci_device_id": 0x2330,  # GH100 [H100 SXM5 80GB]
        "serial": f"16549220{index:05d}",
        "bar1_total_mib": 131072,
        "compute_capability": [9, 0],
        "persistence_mode": 1,
        "mig_mode": 0,
        "xid_supported": 1,
    }
    record.update(overrides)
    return record


def document(n_gpus: int, **system: Any) -> dict[str, Any]:
    """A whole config document with `n_gpus` healthy GPUs."""
    return {
        "driver_version": "550.54.15",
        "nvml_version": "12.550.54.15",
        "cuda_driver_version": 12040,
        "gpus": [gpu(i) for i in range(n_gpus)],
        "events": [],
        **system,
    }


class FakeNvmlConfig:
    """The JSON file the fake library reads; `write`/`update` replace it atomically."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc
        self.write(doc)

    def write(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)  # new inode: the library sees the change at once

    def update_gpu(self, index: int, **changes: Any) -> None:
        doc = copy.deepcopy(self.doc)
        doc["gpus"][index].update(changes)
        self.write(doc)

    def add_event(self, gpu_index: int, xid: int) -> None:
        doc = copy.deepcopy(self.doc)
        next_id = max((e["id"] for e in doc["events"]), default=0) + 1
        doc["events"].append({"id": next_id, "gpu": gpu_index, "xid": xid})
        self.write(doc)

    def env(self, lib_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess that must load this fake instead of any real NVML."""
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = (
            f"{lib_dir}:{env['LD_LIBRARY_PATH']}" if env.get("LD_LIBRARY_PATH") else str(lib_dir)
        )
        env[CONFIG_ENV] = str(self.path)
        return env
