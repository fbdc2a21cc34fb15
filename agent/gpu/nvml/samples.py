"""Samples: one GPU's live readings, field by field (a GPU lost midway keeps what was read)."""

from __future__ import annotations

from typing import Any

import pynvml

from agent.gpu.backend import throttle_reason_names
from agent.gpu.nvml.session import (
    NvmlSession,
    mib,
)


def read_metrics(s: NvmlSession, h: Any, out: dict[str, Any]) -> None:
    """Fill `out` field by field, so a GPU lost midway keeps the fields read before it."""
    q = s.query
    util = q("nvmlDeviceGetUtilizationRates", h)
    out["utilization_pct"] = None if util is None else int(util.gpu)
    out["memory_utilization_pct"] = None if util is None else int(util.memory)
    memory = q(("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"), h)
    out["memory_used_mib"] = None if memory is None else mib(memory.used)
    out["temperature_c"] = q(
        ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"),
        h,
        pynvml.NVML_TEMPERATURE_GPU,
    )
    power_mw = q("nvmlDeviceGetPowerUsage", h)
    out["power_draw_w"] = None if power_mw is None else power_mw / 1000
    out["sm_clock_mhz"] = q("nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_SM)
    out["fan_pct"] = q("nvmlDeviceGetFanSpeed", h)
    pstate = q("nvmlDeviceGetPerformanceState", h)
    out["pstate"] = None if pstate is None or pstate >= pynvml.NVML_PSTATE_UNKNOWN else pstate
    out["ecc_uncorrected_volatile"] = q(
        "nvmlDeviceGetTotalEccErrors",
        h,
        pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
        pynvml.NVML_VOLATILE_ECC,
    )
    reasons = q(
        ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
        h,
    )
    out["throttle_reasons"] = None if reasons is None else throttle_reason_names(reasons)
    procs = q(
        ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"),
        h,
    )
    out["compute_process_count"] = None if procs is None else len(procs)
