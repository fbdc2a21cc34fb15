"""The `probe --json` document: one flat record per GPU, every field present (stdlib only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

from agent.gpu.backend import SAMPLE_METRIC_FIELDS, GpuInfo, GpuSample, SystemInfo

_INFO_FIELDS = tuple(f.name for f in fields(GpuInfo))


def gpu_record(system: SystemInfo, info: GpuInfo, sample: GpuSample | None) -> dict[str, Any]:
    """One flat record: fingerprint and sample fields side by side, `None` when unreadable."""
    record: dict[str, Any] = {}
    for name in _INFO_FIELDS:
        value = getattr(info, name)
        record[name] = [asdict(m) for m in value] if name == "mig_devices" else value
    record["driver_version"] = system.driver_version
    record["cuda_driver_version"] = system.cuda_driver_version
    for name in SAMPLE_METRIC_FIELDS:
        value = getattr(sample, name) if sample is not None else None
        record[name] = list(value) if isinstance(value, tuple) else value
    record["xid_events"] = list(sample.xid_events) if sample is not None else []
    record["driver_unresponsive"] = sample.driver_unresponsive if sample is not None else None
    record["sampled_at"] = (
        sample.sampled_at.isoformat().replace("+00:00", "Z") if sample is not None else None
    )
    record["health"] = sample.health.status.value if sample is not None else None
    record["health_reason"] = sample.health.reason if sample is not None else None
    return record


def probe_document(
    backend_kind: str,
    system: SystemInfo,
    gpus: Sequence[GpuInfo],
    samples: Sequence[GpuSample],
) -> dict[str, Any]:
    """The whole probe document (docs/troubleshooting.md): driver facts plus one record per GPU."""
    by_index = {s.index: s for s in samples}
    return {
        "backend": backend_kind,
        "driver_version": system.driver_version,
        "cuda_driver_version": system.cuda_driver_version,
        "nvml_version": system.nvml_version,
        "gpus": [gpu_record(system, g, by_index.get(g.index)) for g in gpus],
    }
