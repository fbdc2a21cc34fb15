"""Rentable units of the host's GPUs and per-unit views of the latest samples.

A rentable unit is what the agent registers, heartbeats and leases: a whole GPU, or — on a GPU
with MIG mode on — each of its MIG instances (docs/miner-protocol.md), never that parent. Pure
functions of (fingerprints, latest samples by physical uuid, unit uuid → gpu_id); the daemon
calls them under its lock. The lease layer's view of a unit is `agent.lease.reconcile.gpu_views`,
the status file's and the metrics endpoint's are in `agent.service.status`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.gpu import GpuInfo, GpuSample
from agent.link.wire import GpuReport

_METRICS = ("utilization_pct", "memory_used_mib", "temperature_c", "power_draw_w")
# What a MIG instance shares with its parent: the die's temperature. Utilisation, memory used
# and power draw of the parent are the whole card's, not the instance's, so they stay None.
_MIG_METRICS = ("temperature_c",)


@dataclass(frozen=True, slots=True)
class RentableUnit:
    """One rentable unit: a whole GPU, or one MIG instance of a GPU with MIG mode on."""

    uuid: str  # "GPU-..." or "MIG-...": what hooks get as AITBC_GPU_UUID
    index: int  # the physical GPU's NVML index: AITBC_GPU_INDEX
    gpu_uuid: str  # the physical GPU's uuid: whose samples (and health) apply
    name: str | None
    memory_total_mib: int | None
    compute_capability: str | None
    mig_profile: str | None = None  # set exactly for a MIG instance ("1g.10gb")

    @property
    def is_mig(self) -> bool:
        """True for a MIG instance."""
        return self.uuid != self.gpu_uuid


def rentable_units(
    gpus: Sequence[GpuInfo], exclude: Collection[str | int] = ()
) -> list[RentableUnit]:
    """The units to offer, by index: GPUs without a uuid (lost before it was read) and
    excluded ones left out (`exclude` holds uuids — MIG ones too — or NVML indexes).

    A GPU with MIG mode on offers its MIG instances and never itself: its whole-card memory
    is not the tenant's, and with no instance configured it can run no CUDA work at all.
    """
    excluded = {str(x) for x in exclude}
    units = []
    for g in gpus:
        if g.uuid is None or g.uuid in excluded or str(g.index) in excluded:
            continue
        if not g.mig_mode:
            units.append(
                RentableUnit(
                    uuid=g.uuid,
                    index=g.index,
                    gpu_uuid=g.uuid,
                    name=g.name,
                    memory_total_mib=g.memory_total_mib,
                    compute_capability=g.compute_capability,
                )
            )
            continue
        for m in g.mig_devices:
            if m.uuid is None or m.uuid in excluded:
                continue
            if g.name is not None and m.profile is not None:
                name: str | None = f"{g.name} MIG {m.profile}"
            else:
                name = m.name or (None if g.name is None else f"{g.name} MIG")
            units.append(
                RentableUnit(
                    uuid=m.uuid,
                    index=g.index,
                    gpu_uuid=g.uuid,
                    name=name,
                    memory_total_mib=m.memory_total_mib,
                    compute_capability=g.compute_capability,
                    mig_profile=m.profile,
                )
            )
    return units


def unit_metrics(unit: RentableUnit, s: GpuSample | None) -> dict[str, Any]:
    """The four load metrics of a unit from its GPU's sample: None when not read, and for a
    MIG instance all but the die's temperature (the rest is the whole card's)."""
    shared = _MIG_METRICS if unit.is_mig else _METRICS
    return {
        name: getattr(s, name) if s is not None and name in shared else None for name in _METRICS
    }


def heartbeat_reports(
    units: Sequence[RentableUnit],
    samples: Mapping[str, GpuSample],
    gpu_ids: Mapping[str, str],
) -> list[GpuReport]:
    """One `gpus[]` entry per registered unit; health is its GPU's, metrics None when not read
    (or, for a MIG instance, not its own)."""
    reports = []
    for unit in units:
        gpu_id = gpu_ids.get(unit.uuid)
        if gpu_id is None:
            continue
        s = samples.get(unit.gpu_uuid)
        reports.append(
            GpuReport(
                gpu_id=gpu_id,
                uuid=unit.uuid,
                health=s.health.status.value if s else "ok",
                health_reason=s.health.reason if s else None,
                **unit_metrics(unit, s),
            )
        )
    return reports
