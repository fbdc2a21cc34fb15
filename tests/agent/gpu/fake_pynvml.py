"""A fake `pynvml` module for tier-1 tests: Python GPUs that raise the REAL pynvml errors.

`FakeNvml` has the pynvml functions `NvmlBackend` calls, with the same signatures, and raises
`pynvml.NVMLError(code)` (which the real binding maps to its `NVMLError_*` subclasses) exactly
where the C library would return that code. Switches per GPU: `errors` (function name → NVML
code), `missing` (function names that raise FunctionNotFound, as pynvml does for a symbol the
library lacks), `lost`, and `hang` (function name → threading.Event the call blocks on). `absent`
(wrapper names) makes the module itself lack those attributes, like an older nvidia-ml-py binding
(12.535 has no `nvmlDeviceGetTemperatureV` nor `nvmlDeviceGetComputeRunningProcesses_v2`).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

MIB = 1024 * 1024


@dataclass
class FakeMig:
    uuid: str
    name: str
    memory_total_mib: int
    gpu_instance_id: int
    compute_instance_id: int = 0


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    memory_total_mib: int = 81559
    memory_used_mib: int = 1024
    utilization_pct: int = 40
    memory_utilization_pct: int = 20
    temperature_c: int = 45
    power_draw_mw: int = 250_000
    power_limit_mw: int = 700_000
    sm_clock_mhz: int = 1980
    max_sm_clock_mhz: int = 1980
    max_memory_clock_mhz: int = 2619
    fan_pct: int = 30
    pstate: int = 0
    ecc_uncorrected_volatile: int = 0
    throttle_reasons: int = 0
    processes: int = 1
    pci_bus_id: str = "00000000:18:00.0"
    compute_capability: tuple[int, int] = (9, 0)
    persistence_mode: int = 1
    mig_mode: int = 0
    migs: list[FakeMig] = field(default_factory=list)
    lost: bool = False
    errors: dict[str, int] = field(default_factory=dict)
    hang: dict[str, threading.Event] = field(default_factory=dict)
    xid_supported: bool = True


@dataclass(frozen=True)
class Handle:
    gpu: int
    mig: int | None = None


def raise_code(code: int) -> None:
    raise pynvml.NVMLError(code)


class FakeNvml:
    """Stands in for the `pynvml` module (pass as `NvmlBackend(nvml=FakeNvml(...))`)."""

    def __init__(self, gpus: list[FakeGpu], **system: Any) -> None:
        self.gpus = gpus
        self.driver_version = system.get("driver_version", "550.54.15")
        self.nvml_version = system.get("nvml_version", "12.550.54.15")
        self.cuda_driver_version = system.get("cuda_driver_version", 12040)
        self.init_error: int | None = system.get("init_error")
        self.missing: set[str] = set(system.get("missing", ()))
        self.absent: frozenset[str] = frozenset(system.get("absent", ()))
        self.calls: Counter[str] = Counter()
        self.events: list[tuple[int, int]] = []  # (gpu index, xid) waiting to be read
        self.registered: set[int] = set()
        self.initialised = 0

    # -- plumbing --------------------------------------------------------------------------

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvml") and name in object.__getattribute__(self, "absent"):
            raise AttributeError(f"module 'pynvml' has no attribute {name!r}")
        return object.__getattribute__(self, name)

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if name in self.missing:
            raise_code(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if not self.initialised and name != "nvmlInit":
            raise_code(pynvml.NVML_ERROR_UNINITIALIZED)

    def _dev(self, name: str, handle: Handle) -> tuple[FakeGpu, FakeMig | None]:
        self._enter(name)
        gpu = self.gpus[handle.gpu]
        event = gpu.hang.get(name)
        if event is not None:
            event.wait(30)
        if gpu.lost:
            raise_code(pynvml.NVML_ERROR_GPU_IS_LOST)
        if name in gpu.errors:
            raise_code(gpu.errors[name])
        return gpu, (gpu.migs[handle.mig] if handle.mig is not None else None)

    # -- system ----------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.init_error is not None:
            raise_code(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._enter("nvmlSystemGetNVMLVersion")
        return self.nvml_version

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion_v2")
        return int(self.cuda_driver_version)

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return int(self.cuda_driver_version)

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        self._dev("nvmlDeviceGetHandleByIndex", Handle(index))
        return Handle(index)

    # -- fingerprint -----------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, h: Handle) -> str:
        gpu, mig = self._dev("nvmlDeviceGetUUID", h)
        return mig.uuid if mig else gpu.uuid

    def nvmlDeviceGetName(self, h: Handle) -> str:
        gpu, mig = self._dev("nvmlDeviceGetName", h)
        return mig.name if mig else gpu.name

    def nvmlDeviceGetMemoryInfo(self, h: Handle, version: int | None = None) -> SimpleNamespace:
        name = "nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo"
        gpu, mig = self._dev(name, h)
        if version and version != pynvml.nvmlMemory_v2:
            raise_code(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        total = (mig.memory_total_mib if mig else gpu.memory_total_mib) * MIB
        used = 0 if mig else gpu.memory_used_mib * MIB
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetCudaComputeCapability(self, h: Handle) -> tuple[int, int]:
        gpu, _ = self._dev("nvmlDeviceGetCudaComputeCapability", h)
        return gpu.compute_capability

    def nvmlDeviceGetPciInfo_v3(self, h: Handle) -> SimpleNamespace:
        gpu, _ = self._dev("nvmlDeviceGetPciInfo_v3", h)
        return SimpleNamespace(busId=gpu.pci_bus_id.encode(), pciDeviceId=0x233010DE)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Handle) -> int:
        return self._dev("nvmlDeviceGetEnforcedPowerLimit", h)[0].power_limit_mw

    def nvmlDeviceGetMaxClockInfo(self, h: Handle, kind: int) -> int:
        gpu, _ = self._dev("nvmlDeviceGetMaxClockInfo", h)
        return gpu.max_sm_clock_mhz if kind == pynvml.NVML_CLOCK_SM else gpu.max_memory_clock_mhz

    def nvmlDeviceGetPersistenceMode(self, h: Handle) -> int:
        return self._dev("nvmlDeviceGetPersistenceMode", h)[0].persistence_mode

    def nvmlDeviceGetMigMode(self, h: Handle) -> list[int]:
        gpu, _ = self._dev("nvmlDeviceGetMigMode", h)
        return [gpu.mig_mode, gpu.mig_mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: Handle) -> int:
        self._dev("nvmlDeviceGetMaxMigDeviceCount", h)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: Handle, i: int) -> Handle:
        gpu, _ = self._dev("nvmlDeviceGetMigDeviceHandleByIndex", h)
        if i >= len(gpu.migs):
            raise_code(pynvml.NVML_ERROR_NOT_FOUND)
        return Handle(h.gpu, i)

    def nvmlDeviceGetGpuInstanceId(self, h: Handle) -> int:
        _, mig = self._dev("nvmlDeviceGetGpuInstanceId", h)
        if mig is None:
            raise_code(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return mig.gpu_instance_id  # type: ignore[union-attr]

    def nvmlDeviceGetComputeInstanceId(self, h: Handle) -> int:
        _, mig = self._dev("nvmlDeviceGetComputeInstanceId", h)
        if mig is None:
            raise_code(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return mig.compute_instance_id  # type: ignore[union-attr]

    # -- sample ----------------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, h: Handle) -> SimpleNamespace:
        gpu, _ = self._dev("nvmlDeviceGetUtilizationRates", h)
        return SimpleNamespace(gpu=gpu.utilization_pct, memory=gpu.memory_utilization_pct)

    def nvmlDeviceGetTemperatureV(self, h: Handle, sensor: int) -> int:
        return self._dev("nvmlDeviceGetTemperatureV", h)[0].temperature_c

    def nvmlDeviceGetTemperature(self, h: Handle, sensor: int) -> int:
        return self._dev("nvmlDeviceGetTemperature", h)[0].temperature_c

    def nvmlDeviceGetPowerUsage(self, h: Handle) -> int:
        return self._dev("nvmlDeviceGetPowerUsage", h)[0].power_draw_mw

    def nvmlDeviceGetClockInfo(self, h: Handle, kind: int) -> int:
        return self._dev("nvmlDeviceGetClockInfo", h)[0].sm_clock_mhz

    def nvmlDeviceGetFanSpeed(self, h: Handle) -> int:
        return self._dev("nvmlDeviceGetFanSpeed", h)[0].fan_pct

    def nvmlDeviceGetPerformanceState(self, h: Handle) -> int:
        return self._dev("nvmlDeviceGetPerformanceState", h)[0].pstate

    def nvmlDeviceGetTotalEccErrors(self, h: Handle, error_type: int, counter: int) -> int:
        gpu, _ = self._dev("nvmlDeviceGetTotalEccErrors", h)
        assert error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        assert counter == pynvml.NVML_VOLATILE_ECC
        return gpu.ecc_uncorrected_volatile

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Handle) -> int:
        return self._dev("nvmlDeviceGetCurrentClocksEventReasons", h)[0].throttle_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: Handle) -> int:
        return self._dev("nvmlDeviceGetCurrentClocksThrottleReasons", h)[0].throttle_reasons

    def nvmlDeviceGetComputeRunningProcesses_v3(self, h: Handle) -> list[object]:
        gpu, _ = self._dev("nvmlDeviceGetComputeRunningProcesses_v3", h)
        return [object()] * gpu.processes

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: Handle) -> list[object]:
        gpu, _ = self._dev("nvmlDeviceGetComputeRunningProcesses_v2", h)
        return [object()] * gpu.processes

    # -- events ----------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> str:
        self._enter("nvmlEventSetCreate")
        return "event-set"

    def nvmlEventSetFree(self, event_set: str) -> None:
        self._enter("nvmlEventSetFree")

    def nvmlDeviceGetSupportedEventTypes(self, h: Handle) -> int:
        gpu, _ = self._dev("nvmlDeviceGetSupportedEventTypes", h)
        if not gpu.xid_supported:
            raise_code(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError

    def nvmlDeviceRegisterEvents(self, h: Handle, mask: int, event_set: str) -> None:
        self._dev("nvmlDeviceRegisterEvents", h)
        assert mask & pynvml.nvmlEventTypeXidCriticalError
        self.registered.add(h.gpu)

    def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> SimpleNamespace:
        self._enter("nvmlEventSetWait_v2")
        while self.events:
            index, xid = self.events.pop(0)
            if index in self.registered:
                return SimpleNamespace(
                    device=Handle(index),
                    eventType=pynvml.nvmlEventTypeXidCriticalError,
                    eventData=xid,
                )
        raise_code(pynvml.NVML_ERROR_TIMEOUT)
        raise AssertionError  # unreachable
