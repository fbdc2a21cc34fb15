"""The GPU layer: fingerprints, samples and health from NVML or from simulated GPUs.

Imports only the standard library and `pynvml` (in `nvml/`, loaded lazily) — nothing else of
the agent; its errors are its own (`agent.gpu.errors`) — so it runs on a bare GPU host with
`python3` alone.

    backend = open_backend(settings.gpu, settings.health)   # opened; GpuAccessError if not
    try:
        for gpu in backend.gpus(): ...
        for sample in backend.sample(): ...  # sample.health is after hysteresis
    finally:
        backend.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.gpu.backend import (
    HEALTH_OK,
    GpuBackend,
    GpuInfo,
    GpuSample,
    Health,
    HealthStatus,
    MigDeviceInfo,
    SystemInfo,
)
from agent.gpu.health import HealthPolicy
from agent.gpu.simulated import (
    SimulatedBackend,
    SimulatedFault,
    SimulatedGpuSpec,
    SimulatedMigSpec,
)

__all__ = [
    "HEALTH_OK",
    "GpuBackend",
    "GpuConfig",
    "GpuInfo",
    "GpuSample",
    "Health",
    "HealthConfig",
    "HealthPolicy",
    "HealthStatus",
    "MigDeviceInfo",
    "SimulatedBackend",
    "SimulatedFault",
    "SimulatedGpuSpec",
    "SimulatedMigSpec",
    "SystemInfo",
    "make_backend",
    "open_backend",
]


class SimulatedFaultConfig(Protocol):
    """What `make_backend` reads from one `[[gpu.simulated]] faults` entry."""

    @property
    def kind(self) -> str: ...
    @property
    def at_sample(self) -> int: ...
    @property
    def unit(self) -> int: ...
    @property
    def duration_samples(self) -> int: ...
    @property
    def xid(self) -> int: ...


class SimulatedMigConfig(Protocol):
    """What `make_backend` reads from one `[[gpu.simulated]] mig` entry."""

    @property
    def profile(self) -> str: ...
    @property
    def memory_mib(self) -> int: ...


class SimulatedGpuConfig(Protocol):
    """What `make_backend` reads from one `[[gpu.simulated]]` entry."""

    @property
    def model(self) -> str: ...
    @property
    def memory_mib(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def compute_capability(self) -> str: ...
    @property
    def power_limit_w(self) -> float: ...
    @property
    def utilization_pct(self) -> Sequence[int]: ...
    @property
    def faults(self) -> Sequence[SimulatedFaultConfig]: ...
    @property
    def mig(self) -> Sequence[SimulatedMigConfig]: ...


class GpuConfig(Protocol):
    """What `make_backend` reads from `[gpu]` (agent.config.GpuSettings satisfies it)."""

    @property
    def backend(self) -> str: ...
    @property
    def exclude(self) -> Sequence[str | int]: ...
    @property
    def simulated(self) -> Sequence[SimulatedGpuConfig]: ...


class HealthConfig(Protocol):
    """What `make_backend` reads from `[health]` (agent.config.HealthSettings satisfies it)."""

    @property
    def ignore_xids(self) -> Sequence[int]: ...
    @property
    def recover_after_ok_samples(self) -> int: ...


def _simulated_specs(entries: Sequence[SimulatedGpuConfig]) -> list[SimulatedGpuSpec]:
    specs = []
    for e in entries:
        faults = tuple(
            SimulatedFault(
                kind=f.kind,  # type: ignore[arg-type]  # validated by the config layer
                at_sample=f.at_sample,
                unit=f.unit,
                duration_samples=f.duration_samples,
                xid=f.xid,
            )
            for f in e.faults
        )
        specs.append(
            SimulatedGpuSpec(
                model=e.model,
                memory_mib=e.memory_mib,
                count=e.count,
                compute_capability=e.compute_capability,
                power_limit_w=e.power_limit_w,
                utilization_pct=tuple(e.utilization_pct),
                faults=faults,
                mig=tuple(SimulatedMigSpec(m.profile, m.memory_mib) for m in e.mig),
            )
        )
    return specs


def make_backend(
    gpu: GpuConfig, health: HealthConfig | HealthPolicy | None = None, *, host: str | None = None
) -> GpuBackend:
    """Build (not open) the backend `gpu.backend` names; never falls back to simulated."""
    if isinstance(health, HealthPolicy):
        policy = health
    elif health is None:
        policy = HealthPolicy()
    else:
        policy = HealthPolicy.of(health.ignore_xids, health.recover_after_ok_samples)
    if gpu.backend == "simulated":
        return SimulatedBackend(
            _simulated_specs(gpu.simulated), host=host, exclude=gpu.exclude, policy=policy
        )
    if gpu.backend == "nvml":
        from agent.gpu.nvml import NvmlBackend  # pynvml only when asked for

        return NvmlBackend(exclude=gpu.exclude, policy=policy)
    raise ValueError(f"unknown GPU backend {gpu.backend!r}")


def open_backend(
    gpu: GpuConfig, health: HealthConfig | HealthPolicy | None = None, *, host: str | None = None
) -> GpuBackend:
    """Build and open the configured backend; raises `GpuAccessError` when it cannot start."""
    backend = make_backend(gpu, health, host=host)
    backend.open()
    return backend
