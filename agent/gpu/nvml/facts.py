"""Device facts: the system's driver/CUDA/NVML versions and each GPU's fingerprint (and its MIG
instances), read once at open and again when a lost GPU is found by its index."""

from __future__ import annotations

from typing import Any

import pynvml

from agent.gpu.backend import GpuInfo, MigDeviceInfo, SystemInfo
from agent.gpu.nvml.session import (
    MIG_PROFILE,
    GpuLostError,
    NvmlSession,
    blank_info,
    cuda_version,
    log,
    mib,
    text,
)


def read_system(s: NvmlSession) -> SystemInfo:
    q = s.query
    cuda = q(("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"))
    return SystemInfo(
        driver_version=text(q("nvmlSystemGetDriverVersion")),
        cuda_driver_version=cuda_version(cuda),
        nvml_version=text(q("nvmlSystemGetNVMLVersion")),
    )


def fingerprint(s: NvmlSession, index: int) -> tuple[Any | None, GpuInfo]:
    """(handle, fingerprint) of GPU `index`; a lost or unreadable GPU keeps its index."""
    try:
        handle = s.call("nvmlDeviceGetHandleByIndex", index)
        return handle, read_info(s, index, handle)
    except GpuLostError:
        return None, blank_info(index)
    except pynvml.NVMLError as exc:  # GPU_IS_LOST included: no handle at all
        log.warning("nvml GPU %d has no handle: %s", index, exc)
        return None, blank_info(index)


def read_info(s: NvmlSession, index: int, h: Any) -> GpuInfo:
    q = s.query
    memory = q(("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"), h)
    cc = q("nvmlDeviceGetCudaComputeCapability", h)
    pci = q("nvmlDeviceGetPciInfo_v3", h)
    limit_mw = q("nvmlDeviceGetEnforcedPowerLimit", h)
    persistence = q("nvmlDeviceGetPersistenceMode", h)
    mig = q("nvmlDeviceGetMigMode", h)
    bar1 = q("nvmlDeviceGetBAR1MemoryInfo", h)
    mig_enabled = None if mig is None else mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE
    return GpuInfo(
        index=index,
        uuid=text(q("nvmlDeviceGetUUID", h)),
        name=text(q("nvmlDeviceGetName", h)),
        memory_total_mib=None if memory is None else mib(memory.total),
        compute_capability=None if cc is None else f"{cc[0]}.{cc[1]}",
        pci_bus_id=None if pci is None else text(pci.busId),
        power_limit_w=None if limit_mw is None else limit_mw / 1000,
        max_sm_clock_mhz=q("nvmlDeviceGetMaxClockInfo", h, pynvml.NVML_CLOCK_SM),
        max_memory_clock_mhz=q("nvmlDeviceGetMaxClockInfo", h, pynvml.NVML_CLOCK_MEM),
        persistence_mode=None if persistence is None else bool(persistence),
        mig_mode=mig_enabled,
        mig_devices=read_mig(s, h) if mig_enabled else (),
        pci_device_id=None if pci is None else (pci.pciDeviceId >> 16) & 0xFFFF,
        serial=text(q("nvmlDeviceGetSerial", h)),
        bar1_total_mib=None if bar1 is None else mib(bar1.bar1Total),
    )


def read_mig(s: NvmlSession, h: Any) -> tuple[MigDeviceInfo, ...]:
    q = s.query
    devices = []
    for i in range(q("nvmlDeviceGetMaxMigDeviceCount", h) or 0):
        try:
            m = s.call("nvmlDeviceGetMigDeviceHandleByIndex", h, i)
        except pynvml.NVMLError_GpuIsLost as exc:
            raise GpuLostError("nvmlDeviceGetMigDeviceHandleByIndex") from exc
        except pynvml.NVMLError:
            continue  # NOT_FOUND: no MIG device in this slot
        name = text(q("nvmlDeviceGetName", m))
        memory = q("nvmlDeviceGetMemoryInfo", m)
        profile = MIG_PROFILE.search(name or "")
        devices.append(
            MigDeviceInfo(
                index=i,
                uuid=text(q("nvmlDeviceGetUUID", m)),
                name=name,
                profile=profile.group(1) if profile else None,
                memory_total_mib=None if memory is None else mib(memory.total),
                gpu_instance_id=q("nvmlDeviceGetGpuInstanceId", m),
                compute_instance_id=q("nvmlDeviceGetComputeInstanceId", m),
            )
        )
    return tuple(devices)
