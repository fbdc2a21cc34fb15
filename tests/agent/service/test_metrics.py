"""The optional Prometheus endpoint serves GPU gauges and agent counters."""

from __future__ import annotations

import socket

import httpx
import pytest

from agent.errors import ConfigError
from agent.service.metrics import GpuMetrics, Snapshot, serve
from tests.support import free_port


def snapshot() -> Snapshot:
    return Snapshot(
        gpus=[
            GpuMetrics("GPU-0", 0, "H100", "ok", 42.0, 1024.0, 55.0, 300.5),
            GpuMetrics("GPU-1", 1, "H100", "lost", None, None, None, None),
        ],
        leases_active=1,
        acks_owed=0,
        coordinator_up=True,
        counters={"heartbeats_sent_total": 7},
    )


def test_scrape_shows_gauges_health_and_counters() -> None:
    port = free_port()
    stop = serve("127.0.0.1", port, snapshot)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop()
    assert 'aitbc_gpu_utilization_pct{index="0",model="H100",uuid="GPU-0"} 42.0' in text
    assert 'aitbc_gpu_utilization_pct{index="1"' not in text  # unknown, not zero
    assert 'aitbc_gpu_health{health="lost",index="1",model="H100",uuid="GPU-1"} 1.0' in text
    assert "aitbc_agent_leases_active 1.0" in text
    assert "aitbc_agent_coordinator_up 1.0" in text
    assert "aitbc_agent_heartbeats_sent_total 7.0" in text


def test_port_in_use_is_a_config_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=r"metrics\.listen"):
            serve("127.0.0.1", port, snapshot)
