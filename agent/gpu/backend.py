"""What a GPU backend reports: fingerprints, samples, health; and the `GpuBackend` protocol.

Standard library only. Units live in the field names; a value the card, driver or library
cannot report is `None` (never an exception), per field.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class HealthStatus(enum.StrEnum):
    """Health of one GPU, in increasing order of severity."""

    OK = "ok"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    LOST = "lost"

    @property
    def severity(self) -> int:
        """0 for ok up to 3 for lost."""
        return _SEVERITY[self]


_SEVERITY = {
    HealthStatus.OK: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.UNHEALTHY: 2,
    HealthStatus.LOST: 3,
}


@dataclass(frozen=True, slots=True)
class Health:
    """A GPU's health after hysteresis; `reason` is None exactly when `status` is ok."""

    status: HealthStatus
    reason: str | None = None


HEALTH_OK = Health(HealthStatus.OK)


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """Host-wide driver facts (NVML version strings as NVML spells them)."""

    driver_version: str | None
    cuda_driver_version: str | None  # "12.4"
    nvml_version: str | None


@dataclass(frozen=True, slots=True)
class MigDeviceInfo:
    """One MIG instance: a rentable unit with its own uuid, profile and memory."""

    index: int  # MIG index within its parent GPU
    uuid: str | None
    name: str | None
    profile: str | None  # "1g.10gb"
    memory_total_mib: int | None
    gpu_instance_id: int | None
    compute_instance_id: int | None


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """The fingerprint of one physical GPU: what does not change while it runs."""

    index: int  # NVML enumeration index
    uuid: str | None  # None only when the GPU was lost before its uuid could be read
    name: str | None
    memory_total_mib: int | None
    compute_capability: str | None  # "9.0"
    pci_bus_id: str | None
    power_limit_w: float | None
    max_sm_clock_mhz: int | None
    max_memory_clock_mhz: int | None
    persistence_mode: bool | None
    mig_mode: bool | None
    mig_devices: tuple[MigDeviceInfo, ...] = ()
    pci_device_id: int | None = None  # the PCI device id alone (0x2330), vendor bits dropped
    serial: str | None = None  # the board serial (datacenter cards; None on GeForce)
    bar1_total_mib: int | None = None  # the BAR1 aperture: 128 GiB on H100, 256 MiB on most GeForce


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One reading of one GPU, with its health after hysteresis."""

    index: int
    uuid: str | None
    sampled_at: datetime  # timezone-aware UTC
    utilization_pct: int | None = None
    memory_utilization_pct: int | None = None
    memory_used_mib: int | None = None
    temperature_c: int | None = None
    power_draw_w: float | None = None
    sm_clock_mhz: int | None = None
    fan_pct: int | None = None
    pstate: int | None = None  # 0 (P0, fastest) .. 15
    ecc_uncorrected_volatile: int | None = None
    throttle_reasons: tuple[str, ...] | None = None
    compute_process_count: int | None = None
    xid_events: tuple[int, ...] = ()  # Xid codes seen since the previous sample
    lost: bool = False  # NVML said GPU_IS_LOST during this sample
    driver_unresponsive: bool = False  # an NVML call overran its deadline
    health: Health = field(default=HEALTH_OK)


# NVML clock event ("throttle") reason bits, by the names samples carry.
THROTTLE_REASON_BITS: tuple[tuple[int, str], ...] = (
    (0x0000000000000001, "gpu_idle"),
    (0x0000000000000002, "applications_clocks_setting"),
    (0x0000000000000004, "sw_power_cap"),
    (0x0000000000000008, "hw_slowdown"),
    (0x0000000000000010, "sync_boost"),
    (0x0000000000000020, "sw_thermal_slowdown"),
    (0x0000000000000040, "hw_thermal_slowdown"),
    (0x0000000000000080, "hw_power_brake_slowdown"),
    (0x0000000000000100, "display_clock_setting"),
)


def throttle_reason_names(mask: int) -> tuple[str, ...]:
    """Names of the set bits of an NVML clock-event reason mask (unknown bits as hex)."""
    names = [name for bit, name in THROTTLE_REASON_BITS if mask & bit]
    known = 0
    for bit, _ in THROTTLE_REASON_BITS:
        known |= bit
    if mask & ~known:
        names.append(f"0x{mask & ~known:x}")
    return tuple(names)


# Fields of GpuSample that are measurements (all may be None); used by probe documents.
SAMPLE_METRIC_FIELDS: tuple[str, ...] = (
    "utilization_pct",
    "memory_utilization_pct",
    "memory_used_mib",
    "temperature_c",
    "power_draw_w",
    "sm_clock_mhz",
    "fan_pct",
    "pstate",
    "ecc_uncorrected_volatile",
    "throttle_reasons",
    "compute_process_count",
)


@runtime_checkable
class GpuBackend(Protocol):
    """A source of GPU fingerprints and samples.

    Lifecycle: `open()` once (raises `GpuAccessError` when the GPUs cannot be read at all),
    then `gpus()` / `sample()` as often as needed, then `close()`. Per-GPU trouble never raises:
    it shows up as `None` fields and as the sample's `health`.
    """

    @property
    def kind(self) -> str:
        """ "nvml" or "simulated"."""
        ...

    def open(self) -> SystemInfo:
        """Start the backend and return host-wide driver facts."""
        ...

    def system_info(self) -> SystemInfo:
        """Host-wide driver facts read at `open()`."""
        ...

    def gpus(self) -> Sequence[GpuInfo]:
        """Fingerprints of every GPU offered (excluded GPUs left out), by index."""
        ...

    def sample(self) -> Sequence[GpuSample]:
        """Read every offered GPU once; one sample per GPU of `gpus()`, same order."""
        ...

    def close(self, timeout_s: float = 2.0) -> None:
        """Release handles and threads within about `timeout_s`; safe to call twice."""
        ...
