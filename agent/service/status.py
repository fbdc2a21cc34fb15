"""What the running agent shows of itself: the STATUS= line, status.json, the metrics snapshot.

All three are views of the daemon's state, read without changing it: STATUS= goes to systemd
(sent by the main loop when it changed), status.json to `aitbc-agent status` (written after each
heartbeat tick; not durable, only a view), the snapshot to the Prometheus collector when scraped.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from agent import __version__
from agent.errors import AgentError
from agent.gpu import GpuInfo, GpuSample
from agent.histogram import HistogramSnapshot
from agent.lease.reconcile import is_unhealthy
from agent.lease.state import utc_now, write_atomic
from agent.link.units import RentableUnit, unit_metrics
from agent.log import get_logger
from agent.service.metrics import GpuMetrics, Snapshot
from agent.service.runtime import DaemonRuntime

log = get_logger("agent.daemon")  # the daemon's events, under the name operators filter by

STATUS_FILE = "status.json"


class StatusReporter:
    """One daemon's status line, status file and metrics snapshot."""

    def __init__(self, daemon: DaemonRuntime) -> None:
        self._d = daemon
        self.last_line = ""  # the text of the last STATUS= handed out
        self._write_failed_logged = False

    def line(self, *, force: bool = False) -> str:
        """`STATUS=...` when it changed since the last one sent (or `force`), else ""."""
        d = self._d
        active = d.worker.counts()[0] if d.worker is not None else 0
        unhealthy = sum(1 for s in d.samples.values() if is_unhealthy(s.health.status.value))
        text = f"{len(d.units)} GPUs, {active} leased"
        if unhealthy:
            text += f", {unhealthy} unhealthy"
        text += f", coordinator {d.health.state}"
        if d.worker is not None and d.worker.state_error:
            text += ", state file not writable"
        if text == self.last_line and not force:
            return ""
        self.last_line = text
        return f"STATUS={text}"

    def write(self) -> None:
        """Write status.json for `aitbc-agent status` (not durable: it is only a view)."""
        d = self._d
        with d.lock:
            gpus = status_rows(d.units, d.samples, d.state.gpu_ids)
        last_heartbeat_at = d.heartbeat.last_heartbeat_at
        doc = {
            "pid": os.getpid(),
            "version": __version__,
            "instance_id": d.instance_id,
            "written_at": utc_now().isoformat(),
            # The coordinator in use now (the first of the list, unless failed over).
            "coordinator_url": d.client.base_url if d.client else d.settings.coordinator.urls[0],
            "coordinator_state": d.health.state,
            "registered": d.registered_event.is_set(),
            "last_heartbeat_at": None
            if last_heartbeat_at is None
            else last_heartbeat_at.isoformat(),
            "heartbeat_interval_s": d.interval_s,
            "gpus": gpus,
        }
        error: AgentError | None = None
        try:
            write_atomic(
                d.store.state_dir / STATUS_FILE, json.dumps(doc, indent=1).encode(), durable=False
            )
        except AgentError as exc:
            error = exc
        if error is not None and not self._write_failed_logged:
            self._write_failed_logged = True
            log.warning("status_write_failed", error=str(error))

    def metrics_snapshot(self) -> Snapshot:
        """The numbers `agent.service.metrics` exports, read when Prometheus scrapes."""
        d = self._d
        active, owed = d.worker.counts() if d.worker is not None else (0, 0)
        leased = d.worker.active_units() if d.worker is not None else collections.Counter()
        system = d.backend.system_info() if d.backend is not None else None
        # The worker's hook threads count under this lock too: copy under it.
        with d.lock:
            gpus = metrics_rows(d.gpus, d.units, d.samples, leased, d.xid_counts)
            counters = dict(d.counters)
            hook_seconds: dict[str, HistogramSnapshot] = {}
            if d.worker is not None:
                counters.update(d.worker.counters)
                hook_seconds = {h: hist.snapshot() for h, hist in d.worker.hook_seconds.items()}
        info = {"version": __version__, "backend": "" if d.backend is None else d.backend.kind}
        if system is not None:
            info["driver_version"] = system.driver_version or ""
            info["cuda_driver_version"] = system.cuda_driver_version or ""
        return Snapshot(
            gpus=gpus,
            leases_active=active,
            acks_owed=owed,
            coordinator_up=d.health.up,
            counters=counters,
            hook_seconds=hook_seconds,
            info=info,
        )


def status_rows(
    units: Sequence[RentableUnit],
    samples: Mapping[str, GpuSample],
    gpu_ids: Mapping[str, str],
) -> list[dict[str, Any]]:
    """The `gpus` of status.json (what `aitbc-agent status` shows): one row per unit."""
    rows = []
    for unit in units:
        s = samples.get(unit.gpu_uuid)
        rows.append(
            {
                "index": unit.index,
                "uuid": unit.uuid,
                "gpu_id": gpu_ids.get(unit.uuid),
                "name": unit.name,
                "memory_total_mib": unit.memory_total_mib,
                "parent_uuid": unit.gpu_uuid if unit.is_mig else None,
                "mig_profile": unit.mig_profile,
                "health": None if s is None else s.health.status.value,
                "health_reason": None if s is None else s.health.reason,
                **unit_metrics(unit, s),
            }
        )
    return rows


def metrics_rows(
    gpus: Sequence[GpuInfo],
    units: Sequence[RentableUnit],
    samples: Mapping[str, GpuSample],
    leased_units: Mapping[str, int],
    xid_counts: Mapping[tuple[str, int], int],
) -> list[GpuMetrics]:
    """The GPU series of the Prometheus endpoint (GPUs without a uuid or sample left out).

    `leased_units` counts active leases by unit uuid; a lease on a MIG instance counts for
    the GPU that holds it.
    """
    parent = {unit.uuid: unit.gpu_uuid for unit in units}
    leased: collections.Counter[str] = collections.Counter()
    for unit_uuid, n in leased_units.items():
        leased[parent.get(unit_uuid, unit_uuid)] += n
    xids: dict[str, dict[int, int]] = collections.defaultdict(dict)
    for (uuid, code), n in xid_counts.items():
        xids[uuid][code] = n
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
                pci_bus_id=info.pci_bus_id or "",
                health=s.health.status.value,
                leased=leased[info.uuid],
                utilization_pct=s.utilization_pct,
                memory_used_mib=s.memory_used_mib,
                memory_total_mib=info.memory_total_mib,
                temperature_c=s.temperature_c,
                power_draw_w=s.power_draw_w,
                power_limit_w=info.power_limit_w,
                sm_clock_mhz=s.sm_clock_mhz,
                ecc_uncorrected_volatile=s.ecc_uncorrected_volatile,
                xid_counts=xids.get(info.uuid, {}),
            )
        )
    return rows
