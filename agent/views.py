"""Per-GPU views of the daemon's latest samples: heartbeat reports, status rows, metrics.

Pure functions of (fingerprints, latest samples by uuid, uuid → gpu_id); the daemon calls them
under its lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.gpu import GpuInfo, GpuSample
from agent.metrics import GpuMetrics
from agent.wire import GpuReport

_METRICS = ("utilization_pct", "memory_used_mib", "temperature_c", "power_draw_w")


def heartbeat_reports(
    gpus: Sequence[GpuInfo], samples: Mapping[str, GpuSample], gpu_ids: Mapping[str, str]
) -> list[GpuReport]:
    """One `gpus[]` entry per registered GPU; metrics None when not read."""
    reports = []
    for info in gpus:
        gpu_id = gpu_ids.get(info.uuid or "")
        if gpu_id is None:
            continue
        s = samples.get(info.uuid or "")
        reports.append(
            GpuReport(
                gpu_id=gpu_id,
                uuid=info.uuid,
                health=s.health.status.value if s else "ok",
                health_reason=s.health.reason if s else None,
                **{name: None if s is None else getattr(s, name) for name in _METRICS},
            )
        )
    return reports


def status_rows(
    gpus: Sequence[GpuInfo], samples: Mapping[str, GpuSample], gpu_ids: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The `gpus` of status.json (what `aitbc-agent status` shows)."""
    rows = []
    for info in gpus:
        s = samples.get(info.uuid or "")
        rows.append(
            {
                "index": info.index,
                "uuid": info.uuid,
                "gpu_id": gpu_ids.get(info.uuid or ""),
                "name": info.name,
                "memory_total_mib": info.memory_total_mib,
                "health": None if s is None else s.health.status.value,
                "health_reason": None if s is None else s.health.reason,
                **{name: None if s is None else getattr(s, name) for name in _METRICS},
            }
        )
    return rows


def metrics_rows(gpus: Sequence[GpuInfo], samples: Mapping[str, GpuSample]) -> list[GpuMetrics]:
    """The GPU gauges of the Prometheus endpoint (GPUs without a uuid or sample left out)."""
    rows = []
    for info in gpus:
        s = samples.get(info.uuid or "")
        if info.uuid is None or s is None:
            continue
        rows.append(
            GpuMetrics(
                uuid=info.uuid,
                index=info.index,
                model=info.name or "",
                health=s.health.status.value,
                utilization_pct=s.utilization_pct,
                memory_used_mib=s.memory_used_mib,
                temperature_c=s.temperature_c,
                power_draw_w=s.power_draw_w,
            )
        )
    return rows
