"""`GET /v1/marketplace/gpu/stream`: the GPU objects, then each change, as server-sent events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.coordinator.market_support import credit, new_booking
from tests.coordinator.miner_support import online_gpu
from tests.support import CLIENT_KEY, free_port, live_coordinator


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The `event: gpu` payloads of an SSE line stream."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == "gpu":
            yield json.loads(line[6:])


def test_the_stream_sends_each_gpu_then_its_changes(tmp_path: Path) -> None:
    with live_coordinator(f"sqlite:///{tmp_path / 'c.db'}", port=free_port()) as base:
        http = httpx.Client(base_url=base, timeout=10)
        gpu_id = online_gpu(http)
        credit(http, "alice", "10")
        assert http.get("/v1/marketplace/gpu/stream", params={"ids": "x!"}).status_code == 422
        unknown = http.get("/v1/marketplace/gpu/stream", params={"ids": "gpu_0000000000000000"})
        assert unknown.status_code == 404
        with http.stream("GET", "/v1/marketplace/gpu/stream", params={"ids": gpu_id}) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            stream = events(resp.iter_lines())
            first = next(stream)
            assert (first["id"], first["status"]) == (gpu_id, "available")
            assert first["current_booking"] is None
            new_booking(http, gpu_id, CLIENT_KEY, hours=1)
            change = next(stream)  # within a tick, unasked
            assert change["status"] == "booked"
            assert change["current_booking"]["client_id"] == "alice"
        http.close()
