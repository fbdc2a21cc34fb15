"""The optional Prometheus endpoint (`[metrics] listen = "host:port"`).

Nothing is counted on the hot path: a collector reads the daemon's numbers when scraped, so a
disabled endpoint costs nothing and an enabled one costs only what its scrapes cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.errors import ConfigError

HEALTH_VALUES = ("ok", "degraded", "unhealthy", "lost")


@dataclass(frozen=True, slots=True)
class GpuMetrics:
    """One GPU's latest sample, as exported."""

    uuid: str
    index: int
    model: str
    health: str
    utilization_pct: float | None
    memory_used_mib: float | None
    temperature_c: float | None
    power_draw_w: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the daemon exposes at one scrape."""

    gpus: list[GpuMetrics]
    leases_active: int
    acks_owed: int
    coordinator_up: bool
    counters: Mapping[str, int] = field(default_factory=dict)


class _DaemonCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        labels = ["uuid", "index", "model"]
        families = {
            "utilization_pct": GaugeMetricFamily(
                "aitbc_gpu_utilization_pct", "GPU utilisation, percent", labels=labels
            ),
            "memory_used_mib": GaugeMetricFamily(
                "aitbc_gpu_memory_used_mib", "GPU memory used, MiB", labels=labels
            ),
            "temperature_c": GaugeMetricFamily(
                "aitbc_gpu_temperature_c", "GPU temperature, degrees C", labels=labels
            ),
            "power_draw_w": GaugeMetricFamily(
                "aitbc_gpu_power_draw_w", "GPU power draw, W", labels=labels
            ),
        }
        health = GaugeMetricFamily(
            "aitbc_gpu_health", "1 for the GPU's current health", labels=[*labels, "health"]
        )
        for gpu in snap.gpus:
            values = [gpu.uuid, str(gpu.index), gpu.model]
            for name, family in families.items():
                value = getattr(gpu, name)
                if value is not None:
                    family.add_metric(values, float(value))
            for state in HEALTH_VALUES:
                health.add_metric([*values, state], 1.0 if gpu.health == state else 0.0)
        yield from families.values()
        yield health
        yield GaugeMetricFamily(
            "aitbc_agent_leases_active", "Leases starting or started", value=snap.leases_active
        )
        yield GaugeMetricFamily(
            "aitbc_agent_lease_acks_owed", "Lease acks not yet accepted", value=snap.acks_owed
        )
        yield GaugeMetricFamily(
            "aitbc_agent_coordinator_up",
            "1 when the last heartbeat was accepted",
            value=1.0 if snap.coordinator_up else 0.0,
        )
        for name, value in sorted(snap.counters.items()):
            yield CounterMetricFamily(f"aitbc_agent_{name}", f"Agent counter {name}", value=value)


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
