"""Build the fake libcuda.so.1 (fake_cuda.c) and describe its devices in the environment.

`FakeCuda.env()` is the environment a process (or this one, before `CudaDriver.load`) needs:
the library on LD_LIBRARY_PATH and the FAKE_CUDA_* settings of each device, by default an
honest H100 that matches `tests.fake_nvml.fakelib.gpu(i)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.clib import build_shared

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fake_cuda.c"
BUILD_ROOT = HERE.parent / ".build" / "fake_cuda"
LIBRARY_NAME = "libcuda.so.1"


def build() -> Path:
    """The directory holding the built fake libcuda.so.1."""
    return build_shared(SOURCE, LIBRARY_NAME, [], BUILD_ROOT)


def honest_h100(index: int) -> dict[str, Any]:
    """An H100 SXM5 as the fake NVML's `gpu(index)` describes it, measuring like one."""
    return {
        "UUID": f"GPU-{index:08x}-fake-0000-0000-{index:012x}".replace("fake", "fa4e"),
        "NAME": "NVIDIA H100 80GB HBM3",
        "TOTAL_MIB": 81559,
        "TFLOPS": 60.0,  # ~90 % of the 67 TFLOPS datasheet peak
        "TBPS": 2.9,  # ~87 % of 3.35 TB/s
        "CC": "9.0",
        "PCI": f"0000:{0x18 + index:02x}:00.0",
        "SMS": 132,
    }


@dataclass
class FakeCuda:
    devices: list[dict[str, Any]] = field(default_factory=lambda: [honest_h100(0)])
    max_ptx: str = "9.0"

    def env(self) -> dict[str, str]:
        lib_dir = build()
        out = {
            "LD_LIBRARY_PATH": str(lib_dir),
            "FAKE_CUDA_DEVICES": str(len(self.devices)),
            "FAKE_CUDA_MAX_PTX": self.max_ptx,
        }
        for i, device in enumerate(self.devices):
            out.update({f"FAKE_CUDA_{i}_{key}": str(value) for key, value in device.items()})
        return out

    @property
    def library(self) -> Path:
        return build() / LIBRARY_NAME
