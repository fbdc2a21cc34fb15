"""NvmlBackend: real GPUs through pynvml (work in progress)."""

from __future__ import annotations

from collections.abc import Sequence

from agent.errors import GpuAccessError
from agent.gpu.backend import GpuInfo, GpuSample, SystemInfo
from agent.gpu.health import HealthPolicy


class NvmlBackend:
    """Placeholder until the NVML layer lands."""

    def __init__(self, *, exclude: Sequence[str | int] = (), policy: HealthPolicy | None = None):
        self._exclude = exclude
        self._policy = policy

    @property
    def kind(self) -> str:
        return "nvml"

    def open(self) -> SystemInfo:
        raise GpuAccessError("the NVML backend is not implemented yet")

    def system_info(self) -> SystemInfo:
        raise GpuAccessError("the NVML backend is not implemented yet")

    def gpus(self) -> Sequence[GpuInfo]:
        return []

    def sample(self) -> Sequence[GpuSample]:
        return []

    def close(self) -> None:
        return None
