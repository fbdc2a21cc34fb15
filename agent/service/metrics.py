"""The optional Prometheus endpoint (`[metrics] listen = "host:port"`); names in docs/metrics.md.

Nothing is counted on the hot path: a collector reads the daemon's numbers when scraped, so a
disabled endpoint costs nothing and an enabled one costs only what its scrapes cost.

Names follow Prometheus conventions (base units: `_bytes`, `_celsius`, `_watts`, `_hertz`,
`_ratio`, `_seconds`; counters end in `_total`). GPU series carry the labels dcgm-exporter
uses — `gpu` (index), `UUID`, `modelName`, `pci_bus_id` — so a dashboard can join the two on
`UUID` without relabelling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agent.errors import ConfigError
from agent.histogram import HistogramSnapshot

HEALTH_VALUES = ("ok", "degraded", "unhealthy", "lost")
GPU_LABELS = ["gpu", "UUID", "modelName", "pci_bus_id"]
MIB = 1024 * 1024

# Every counter the agent keeps, with the HELP text Prometheus shows. A counter the code
# increments but this table lacks is not exported (tests/agent/service/test_metrics.py
# checks the two agree), so a new counter cannot ship undocumented.
COUNTER_HELP: Mapping[str, str] = {
    "heartbeats_sent_total": "Heartbeats the coordinator accepted",
    "heartbeat_failures_total": "Heartbeat ticks that failed (coordinator down or refusing)",
    "registrations_total": "Registrations the coordinator accepted (start, reload, re-register)",
    "leases_started_total": "Leases whose on_start hook succeeded (or that had none)",
    "leases_failed_total": "Leases whose on_start hook failed, so the lease was rejected",
    "leases_ended_total": "Leases ended on this host (released, expired or revoked)",
    "leases_rejected_total": "Leases refused before starting (GPU unknown, unhealthy or busy)",
    "hook_runs_total": "on_start / on_end hook runs",
    "hook_failures_total": "Hook runs that exited non-zero, timed out or could not start",
}


@dataclass(frozen=True, slots=True)
class GpuMetrics:
    """One GPU's latest sample, as exported (None: not known, so no series)."""

    uuid: str
    index: int
    model: str
    pci_bus_id: str
    health: str
    leased: int = 0  # active leases on the GPU (several only on a MIG-partitioned GPU)
    utilization_pct: float | None = None
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    temperature_c: float | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: float | None = None
    ecc_uncorrected_volatile: int | None = None
    xid_counts: Mapping[int, int] = field(default_factory=dict)  # since the agent started

    @property
    def labels(self) -> list[str]:
        return [str(self.index), self.uuid, self.model, self.pci_bus_id]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the daemon exposes at one scrape."""

    gpus: list[GpuMetrics]
    leases_active: int
    acks_owed: int
    coordinator_up: bool
    counters: Mapping[str, int] = field(default_factory=dict)
    hook_seconds: Mapping[str, HistogramSnapshot] = field(default_factory=dict)
    info: Mapping[str, str] = field(default_factory=dict)  # version, backend, driver...


# (attribute, metric name, HELP, factor to the base unit)
_GPU_GAUGES: tuple[tuple[str, str, str, float], ...] = (
    ("utilization_pct", "aitbc_gpu_utilization_ratio", "GPU (SM) utilisation, 0 to 1", 0.01),
    ("memory_used_mib", "aitbc_gpu_memory_used_bytes", "GPU memory in use", MIB),
    ("memory_total_mib", "aitbc_gpu_memory_total_bytes", "GPU memory in all", MIB),
    ("temperature_c", "aitbc_gpu_temperature_celsius", "GPU core temperature", 1.0),
    ("power_draw_w", "aitbc_gpu_power_draw_watts", "GPU board power draw", 1.0),
    ("power_limit_w", "aitbc_gpu_power_limit_watts", "GPU enforced power limit", 1.0),
    ("sm_clock_mhz", "aitbc_gpu_sm_clock_hertz", "GPU SM clock now", 1e6),
)


class _DaemonCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from self._gpu_families(snap.gpus)
        info = InfoMetricFamily("aitbc_agent", "The agent's version and what it reads the GPUs by")
        info.add_metric([], dict(snap.info))
        yield info
        yield GaugeMetricFamily(
            "aitbc_agent_leases_active", "Leases starting or started", value=snap.leases_active
        )
        yield GaugeMetricFamily(
            "aitbc_agent_lease_acks_owed",
            "Lease transitions not yet acknowledged by the coordinator",
            value=snap.acks_owed,
        )
        yield GaugeMetricFamily(
            "aitbc_agent_coordinator_up",
            "1 when the last heartbeat was accepted",
            value=1.0 if snap.coordinator_up else 0.0,
        )
        for name, help_text in COUNTER_HELP.items():
            yield CounterMetricFamily(
                f"aitbc_agent_{name}", help_text, value=snap.counters.get(name, 0)
            )
        hooks = HistogramMetricFamily(
            "aitbc_agent_hook_duration_seconds",
            "Wall time of on_start / on_end hook runs",
            labels=["hook"],
        )
        for hook, hist in sorted(snap.hook_seconds.items()):
            hooks.add_metric(
                [hook],
                [(_le(bound), float(n)) for bound, n in hist.buckets],
                sum_value=hist.total,
            )
        yield hooks

    @staticmethod
    def _gpu_families(gpus: list[GpuMetrics]) -> Iterator[Metric]:
        gauges = [
            (attr, factor, GaugeMetricFamily(name, help_text, labels=GPU_LABELS))
            for attr, name, help_text, factor in _GPU_GAUGES
        ]
        health = GaugeMetricFamily(
            "aitbc_gpu_health",
            "1 for the GPU's current health (ok, degraded, unhealthy, lost), 0 for the others",
            labels=[*GPU_LABELS, "health"],
        )
        leased = GaugeMetricFamily(
            "aitbc_gpu_leased",
            "Leases held on the GPU now (0 or 1; a MIG-partitioned GPU holds one per instance)",
            labels=GPU_LABELS,
        )
        ecc = CounterMetricFamily(
            "aitbc_gpu_ecc_uncorrected_errors",
            "Uncorrected ECC errors since the driver loaded (NVML volatile count)",
            labels=GPU_LABELS,
        )
        xid = CounterMetricFamily(
            "aitbc_gpu_xid_errors",
            "Xid errors the driver reported since the agent started, by Xid code",
            labels=[*GPU_LABELS, "xid"],
        )
        for gpu in gpus:
            labels = gpu.labels
            for attr, factor, family in gauges:
                value = getattr(gpu, attr)
                if value is not None:
                    family.add_metric(labels, float(value) * factor)
            for state in HEALTH_VALUES:
                health.add_metric([*labels, state], 1.0 if gpu.health == state else 0.0)
            leased.add_metric(labels, float(gpu.leased))
            if gpu.ecc_uncorrected_volatile is not None:
                ecc.add_metric(labels, float(gpu.ecc_uncorrected_volatile))
            for code, n in sorted(gpu.xid_counts.items()):
                xid.add_metric([*labels, str(code)], float(n))
        yield from (family for _attr, _factor, family in gauges)
        yield from (health, leased, ecc, xid)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def serve(host: str, port: int, snapshot: Callable[[], Snapshot]) -> Callable[[], None]:
    """Start the endpoint on a daemon thread; returns a function that stops it.

    Raises:
        ConfigError: the address cannot be bound (in use, bad host).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DaemonCollector(snapshot))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot listen on metrics.listen {host}:{port}: {exc.strerror}") from exc

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
