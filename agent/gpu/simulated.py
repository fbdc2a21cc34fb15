"""SimulatedBackend: configured fake GPUs for demos and hosts without one; fully deterministic.

Chosen only when the config says `backend = "simulated"`. Each GPU gets a stable uuid
`GPU-sim-<host>-<n>` (n = its index), so registration stays idempotent across restarts. Load is
a script of utilisation values cycled sample by sample; faults are scheduled by sample number,
which lets tests and demos drive the health machinery without a GPU. A spec with `mig` instances
has MIG mode on and one MIG device per instance, uuid `MIG-sim-<host>-<n>-<m>` (m = its MIG
index); like a real MIG GPU, its samples are the parent's (the layer reads no per-instance load).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from agent.gpu.backend import GpuInfo, GpuSample, MigDeviceInfo, SystemInfo
from agent.gpu.health import HealthPolicy, HealthTracker, Observation

FaultKind = Literal["lost", "xid", "ecc", "driver_unresponsive", "throttle"]


@dataclass(frozen=True, slots=True)
class SimulatedFault:
    """A fault on one simulated GPU during samples `at_sample` .. `at_sample + duration - 1`.

    Samples are numbered from 1 (the first `sample()` call after `open()`).
    """

    kind: FaultKind
    at_sample: int
    unit: int = 0  # which GPU of its `SimulatedGpuSpec` (0 .. count-1)
    duration_samples: int = 1
    xid: int = 79  # for kind "xid"


@dataclass(frozen=True, slots=True)
class SimulatedMigSpec:
    """One MIG instance of each GPU of a `SimulatedGpuSpec`."""

    profile: str  # "1g.10gb"
    memory_mib: int


@dataclass(frozen=True, slots=True)
class SimulatedGpuSpec:
    """`count` identical simulated GPUs."""

    model: str
    memory_mib: int
    count: int = 1
    compute_capability: str = "9.0"
    power_limit_w: float = 700.0
    utilization_pct: tuple[int, ...] = (0,)
    faults: tuple[SimulatedFault, ...] = field(default=())
    mig: tuple[SimulatedMigSpec, ...] = field(default=())


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Unit:
    info: GpuInfo
    spec: SimulatedGpuSpec
    unit: int


class SimulatedBackend:
    """A `GpuBackend` over configured fake GPUs."""

    def __init__(
        self,
        specs: Sequence[SimulatedGpuSpec],
        *,
        host: str | None = None,
        exclude: Sequence[str | int] = (),
        policy: HealthPolicy | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._specs = tuple(specs)
        self._host = host
        self._exclude = {str(x) for x in exclude}
        self._tracker = HealthTracker(policy)
        self._clock = clock
        self._units: list[_Unit] = []
        self._samples_taken = 0
        self._ecc: dict[int, int] = {}
        self._lock = threading.Lock()
        self._opened = False

    @property
    def kind(self) -> str:
        return "simulated"

    def open(self) -> SystemInfo:
        host = self._host or socket.gethostname().split(".")[0] or "localhost"
        units: list[_Unit] = []
        index = 0
        for spec in self._specs:
            for unit in range(spec.count):
                info = GpuInfo(
                    index=index,
                    uuid=f"GPU-sim-{host}-{index}",
                    name=spec.model,
                    memory_total_mib=spec.memory_mib,
                    compute_capability=spec.compute_capability,
                    pci_bus_id=f"00000000:{0x10 + index:02X}:00.0",
                    power_limit_w=spec.power_limit_w,
                    max_sm_clock_mhz=1980,
                    max_memory_clock_mhz=2619,
                    persistence_mode=True,
                    mig_mode=bool(spec.mig),
                    mig_devices=self._mig_devices(spec, host, index),
                )
                index += 1
                if str(info.index) in self._exclude or info.uuid in self._exclude:
                    continue
                units.append(_Unit(info, spec, unit))
        self._units = units
        self._opened = True
        return self.system_info()

    def _mig_devices(
        self, spec: SimulatedGpuSpec, host: str, index: int
    ) -> tuple[MigDeviceInfo, ...]:
        devices = (
            MigDeviceInfo(
                index=m,
                uuid=f"MIG-sim-{host}-{index}-{m}",
                name=f"{spec.model} MIG {mig.profile}",
                profile=mig.profile,
                memory_total_mib=mig.memory_mib,
                gpu_instance_id=m + 1,
                compute_instance_id=0,
            )
            for m, mig in enumerate(spec.mig)
        )
        return tuple(d for d in devices if d.uuid not in self._exclude)

    def system_info(self) -> SystemInfo:
        return SystemInfo(
            driver_version="simulated", cuda_driver_version=None, nvml_version="simulated"
        )

    def gpus(self) -> Sequence[GpuInfo]:
        return [u.info for u in self._units]

    def sample(self) -> Sequence[GpuSample]:
        with self._lock:
            self._samples_taken += 1
            n = self._samples_taken
            now = self._clock()
            return [self._sample_one(u, n, now) for u in self._units]

    def close(self, timeout_s: float = 2.0) -> None:
        self._opened = False

    def _active_faults(self, u: _Unit, n: int) -> list[SimulatedFault]:
        return [
            f
            for f in u.spec.faults
            if f.unit == u.unit and f.at_sample <= n < f.at_sample + f.duration_samples
        ]

    def _sample_one(self, u: _Unit, n: int, now: datetime) -> GpuSample:
        faults = self._active_faults(u, n)
        kinds = {f.kind for f in faults}
        index = u.info.index
        lost = "lost" in kinds
        hung = "driver_unresponsive" in kinds
        if "ecc" in kinds:
            self._ecc[index] = self._ecc.get(index, 0) + 1
        ecc = self._ecc.get(index, 0)
        xids = tuple(f.xid for f in faults if f.kind == "xid" and f.at_sample == n)
        throttle: tuple[str, ...] = ("hw_thermal_slowdown",) if "throttle" in kinds else ()
        health = self._tracker.update(
            index,
            Observation(
                lost=lost,
                driver_unresponsive=hung,
                xid_events=xids,
                ecc_uncorrected_volatile=None if lost or hung else ecc,
                throttle_reasons=None if lost or hung else throttle,
            ),
        )
        if lost or hung:
            return GpuSample(
                index=index,
                uuid=u.info.uuid,
                sampled_at=now,
                xid_events=xids,
                lost=lost,
                driver_unresponsive=hung,
                health=health,
            )
        script = u.spec.utilization_pct or (0,)
        util = max(0, min(100, script[(n - 1) % len(script)]))
        return GpuSample(
            index=index,
            uuid=u.info.uuid,
            sampled_at=now,
            utilization_pct=util,
            memory_utilization_pct=util // 2,
            memory_used_mib=u.spec.memory_mib * util // 100,
            temperature_c=30 + util // 2,
            power_draw_w=round(u.spec.power_limit_w * (0.1 + 0.9 * util / 100), 3),
            sm_clock_mhz=1980 if util else 345,
            fan_pct=None,
            pstate=0 if util else 8,
            ecc_uncorrected_volatile=ecc,
            throttle_reasons=throttle,
            compute_process_count=1 if util else 0,
            xid_events=xids,
            health=health,
        )
