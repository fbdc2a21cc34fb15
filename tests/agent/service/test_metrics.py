"""The optional Prometheus endpoint serves GPU series in base units and the agent's counters."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.errors import ConfigError
from agent.gpu import GpuInfo, GpuSample
from agent.histogram import Histogram
from agent.link.units import RentableUnit
from agent.service.metrics import COUNTER_HELP, GpuMetrics, Snapshot, serve
from agent.service.status import metrics_rows
from tests.support import free_port

AGENT = Path(__file__).resolve().parents[3] / "agent"
H100 = "NVIDIA H100 80GB HBM3"


def snapshot() -> Snapshot:
    hook = Histogram()
    for seconds in (0.02, 0.3, 7.0):
        hook.observe(seconds)
    return Snapshot(
        gpus=[
            GpuMetrics(
                "GPU-0",
                0,
                H100,
                "00000000:3B:00.0",
                "ok",
                leased=1,
                utilization_pct=42.0,
                memory_used_mib=1024.0,
                memory_total_mib=81559.0,
                temperature_c=55.0,
                power_draw_w=300.5,
                sm_clock_mhz=1980.0,
                ecc_uncorrected_volatile=2,
                xid_counts={79: 1, 13: 3},
            ),
            GpuMetrics("GPU-1", 1, H100, "00000000:5B:00.0", "lost"),
        ],
        leases_active=1,
        acks_owed=0,
        coordinator_up=True,
        counters={"heartbeats_sent_total": 7},
        hook_seconds={"on_start": hook.snapshot()},
        info={"version": "9.9.9", "backend": "nvml"},
    )


def scrape(snap: Snapshot) -> str:
    port = free_port()
    stop = serve("127.0.0.1", port, lambda: snap)
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def gpu0(**extra: str) -> tuple[tuple[str, str], ...]:
    labels = {"gpu": "0", "UUID": "GPU-0", "modelName": H100, "pci_bus_id": "00000000:3B:00.0"}
    return tuple(sorted({**labels, **extra}.items()))


def test_gpu_series_are_in_base_units_with_dcgm_exporter_labels() -> None:
    got = samples(scrape(snapshot()))
    assert got[("aitbc_gpu_utilization_ratio", gpu0())] == pytest.approx(0.42)
    assert got[("aitbc_gpu_memory_used_bytes", gpu0())] == 1024 * 2**20
    assert got[("aitbc_gpu_memory_total_bytes", gpu0())] == 81559 * 2**20
    assert got[("aitbc_gpu_temperature_celsius", gpu0())] == 55.0
    assert got[("aitbc_gpu_power_draw_watts", gpu0())] == 300.5
    assert got[("aitbc_gpu_sm_clock_hertz", gpu0())] == 1.98e9
    assert got[("aitbc_gpu_leased", gpu0())] == 1.0
    assert got[("aitbc_gpu_health", gpu0(health="ok"))] == 1.0
    assert got[("aitbc_gpu_health", gpu0(health="lost"))] == 0.0
    assert got[("aitbc_gpu_ecc_uncorrected_errors_total", gpu0())] == 2.0
    assert got[("aitbc_gpu_xid_errors_total", gpu0(xid="79"))] == 1.0
    assert got[("aitbc_gpu_xid_errors_total", gpu0(xid="13"))] == 3.0
    # A value the GPU did not report is no series at all, never a zero.
    assert not any(
        name == "aitbc_gpu_utilization_ratio" and ("UUID", "GPU-1") in labels
        for name, labels in got
    )


def test_agent_info_counters_and_hook_histogram() -> None:
    text = scrape(snapshot())
    got = samples(text)
    assert got[("aitbc_agent_info", (("backend", "nvml"), ("version", "9.9.9")))] == 1.0
    assert got[("aitbc_agent_leases_active", ())] == 1.0
    assert got[("aitbc_agent_coordinator_up", ())] == 1.0
    assert got[("aitbc_agent_heartbeats_sent_total", ())] == 7.0
    assert got[("aitbc_agent_leases_ended_total", ())] == 0.0  # exported before the first one
    assert got[("aitbc_agent_hook_duration_seconds_count", (("hook", "on_start"),))] == 3.0
    assert (
        got[("aitbc_agent_hook_duration_seconds_bucket", (("hook", "on_start"), ("le", "0.5")))]
        == 2.0
    )
    assert got[("aitbc_agent_hook_duration_seconds_sum", (("hook", "on_start"),))] == pytest.approx(
        7.32
    )
    for name, help_text in COUNTER_HELP.items():
        assert f"# HELP aitbc_agent_{name} {help_text}\n" in text


def test_every_counter_the_agent_increments_is_documented() -> None:
    used = set()
    for path in AGENT.rglob("*.py"):
        used |= set(re.findall(r'counters\[\s*"([a-z_]+)"', path.read_text()))
        for a, b in re.findall(
            r'counters\[\s*"([a-z_]+)" if .*? else "([a-z_]+)"\s*\]', path.read_text()
        ):
            used |= {a, b}
    assert used, "the pattern no longer finds the counters"
    assert used <= set(COUNTER_HELP), used - set(COUNTER_HELP)


def test_histogram_counts_cumulatively_per_bound() -> None:
    hist = Histogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 9.0):
        hist.observe(value)
    snap = hist.snapshot()
    assert snap.buckets == ((1.0, 2), (2.0, 3), (float("inf"), 4))
    assert snap.count == 4
    assert snap.total == 12.0
    with pytest.raises(ValueError, match="increasing"):
        Histogram((2.0, 1.0))


def test_mig_leases_count_for_their_gpu() -> None:
    info = GpuInfo(
        0, "GPU-A", H100, 81559, "9.0", "00000000:3B:00.0", 700.0, 1980, 2619, True, True
    )
    units = [
        RentableUnit(
            index=0,
            uuid="MIG-1",
            gpu_uuid="GPU-A",
            name=H100,
            memory_total_mib=9856,
            compute_capability="9.0",
        ),
        RentableUnit(
            index=0,
            uuid="MIG-2",
            gpu_uuid="GPU-A",
            name=H100,
            memory_total_mib=9856,
            compute_capability="9.0",
        ),
    ]
    sample = GpuSample(index=0, uuid="GPU-A", sampled_at=datetime.now(UTC))
    rows = metrics_rows(
        [info], units, {"GPU-A": sample}, {"MIG-1": 1, "MIG-2": 1}, {("GPU-A", 79): 2}
    )
    assert rows[0].leased == 2
    assert rows[0].xid_counts == {79: 2}
    assert rows[0].power_limit_w == 700.0


def test_port_in_use_is_a_config_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=r"metrics\.listen"):
            serve("127.0.0.1", port, snapshot)
