"""Long-poll herd: one miner key opens hundreds of lease long polls; how fast is `/health`?

Release 0.1.0 let one key hold any number of polls, and one booking woke them all: with 800
open, `/health` took about 6 s (its sync route queued behind the worker threads the wake-ups
filled). Now a miner holds `max_lease_polls_per_miner` (4) polls at most — a newer one answers
the oldest at once — and the health routes never use the shared worker pool.

Protocol: one coordinator process (uvicorn, one worker) on a fresh SQLite file; this script, in
another process, opens `--polls` long polls (`wait_s=25`) for one miner at once, probes
`/health` every 50 ms meanwhile, then books the miner's GPU (a lease change that wakes its
polls) and probes again. Prints JSON: how many polls were answered early (superseded), how many
were still open, and `/health` p50/p99/max during the herd and after the wake-up.

    .venv/bin/python bench/bench_poll_herd.py [--polls 800]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, coordinator

CAP = 4  # COORDINATOR_MAX_LEASE_POLLS_PER_MINER's default


def _summary(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    return {
        "probes": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _probe(base: str, until: float, out: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while time.monotonic() < until:
            started = time.perf_counter()
            resp = await http.get("/health")
            out.append((time.perf_counter() - started) * 1000)
            assert resp.status_code == 200
            await asyncio.sleep(0.05)


async def herd(base: str, polls: int) -> dict[str, Any]:
    miner = {"X-Api-Key": MINER_KEY}
    limits = httpx.Limits(max_connections=polls + 10, max_keepalive_connections=polls + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        assert (await http.post("/v1/miners/register", json={}, headers=miner)).status_code == 200
        gpu = {"gpu": {"name": "NVIDIA H100", "memory_gb": 80, "price_per_hour": "1"}}
        resp = await http.post("/v1/marketplace/gpu/register", json=gpu, headers=miner)
        gpu_id = resp.json()["gpu_id"]
        await http.post(
            "/v1/admin/accounts/alice/credit",
            json={"amount": "100"},
            headers={"X-Api-Key": ADMIN_KEY},
        )
        version = (await http.get("/v1/miners/leases", headers=miner)).json()["lease_version"]

        async def one_poll() -> float:
            started = time.monotonic()
            resp = await http.get(
                "/v1/miners/leases", params={"since": version, "wait_s": 25}, headers=miner
            )
            assert resp.status_code == 200, resp.text
            return time.monotonic() - started

        during: list[float] = []
        opened = time.monotonic()
        probe = asyncio.create_task(_probe(base, opened + 60, during))
        tasks = [asyncio.create_task(one_poll()) for _ in range(polls)]
        # Every poll but the newest few is answered as soon as a newer one supersedes it.
        while sum(1 for t in tasks if t.done()) < polls - CAP and time.monotonic() < opened + 60:
            await asyncio.sleep(0.1)
        settled_s = time.monotonic() - opened
        probe.cancel()
        answered_early = sum(1 for t in tasks if t.done())
        after: list[float] = []
        probe = asyncio.create_task(_probe(base, time.monotonic() + 2, after))
        booked = await http.post(
            f"/v1/marketplace/gpu/{gpu_id}/book",
            json={"duration_hours": 1},
            headers={"X-Api-Key": CLIENT_KEY},
        )
        assert booked.status_code == 201, booked.text
        await probe
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    return {
        "polls_opened": polls,
        "answered_early_superseded": answered_early,
        "still_open_before_the_booking": polls - answered_early,
        "seconds_until_only_the_cap_was_open": round(settled_s, 2),
        "health_during_herd": _summary(during),
        "health_after_wake": _summary(after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, coordinator(Path(tmp)) as base:
        result = asyncio.run(herd(base, args.polls))
    print(json.dumps({"benchmark": "poll_herd", "cpus": 2, **result}, indent=1))


if __name__ == "__main__":
    main()
