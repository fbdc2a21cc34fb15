"""One miner key cannot park hundreds of lease long polls, and `/health` answers meanwhile.

Release 0.1.0 let one key hold any number of polls; with 800 open one booking woke them all and
`/health` took about 6 s. Figures of the full-size run: bench/bench_poll_herd.py.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, live_coordinator

POLLS = 60
CAP = 4  # COORDINATOR_MAX_LEASE_POLLS_PER_MINER's default


async def _herd(base: str) -> tuple[int, list[bool], float]:
    miner = {"X-Api-Key": MINER_KEY}
    limits = httpx.Limits(max_connections=POLLS + 10, max_keepalive_connections=POLLS + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        await http.post("/v1/miners/register", json={}, headers=miner)
        gpu = {"gpu": {"name": "NVIDIA H100", "memory_gb": 80, "price_per_hour": "1"}}
        gpu_id = (await http.post("/v1/marketplace/gpu/register", json=gpu, headers=miner)).json()[
            "gpu_id"
        ]
        await http.post(
            "/v1/admin/accounts/alice/credit",
            json={"amount": "10"},
            headers={"X-Api-Key": ADMIN_KEY},
        )
        version = (await http.get("/v1/miners/leases", headers=miner)).json()["lease_version"]

        async def poll() -> bool:
            resp = await http.get(
                "/v1/miners/leases", params={"since": version, "wait_s": 25}, headers=miner
            )
            assert resp.status_code == 200, resp.text
            return bool(resp.json()["changed"])

        tasks = [asyncio.create_task(poll()) for _ in range(POLLS)]
        deadline = time.monotonic() + 20
        while sum(t.done() for t in tasks) < POLLS - CAP and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        early = sum(t.done() for t in tasks)
        started = time.perf_counter()
        assert (await http.get("/health")).status_code == 200
        health_s = time.perf_counter() - started
        booked = await http.post(
            f"/v1/marketplace/gpu/{gpu_id}/book",
            json={"duration_hours": 1},
            headers={"X-Api-Key": CLIENT_KEY},
        )
        assert booked.status_code == 201
        changed = await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
    return early, changed, health_s


def test_a_newer_poll_supersedes_the_oldest_beyond_the_cap(db_url: str) -> None:
    with live_coordinator(db_url) as base:
        early, changed, health_s = asyncio.run(_herd(base))
    assert early == POLLS - CAP  # answered at once, unchanged: superseded by newer polls
    assert changed.count(True) == CAP  # the newest four waited, and the booking woke them
    assert health_s < 1.0
