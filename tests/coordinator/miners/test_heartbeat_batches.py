"""Heartbeats stored in batches (`miners.ingest`, group commit) against a live coordinator.

Concurrent heartbeats share one transaction; each still gets its own answer, a miner that is
not registered its own 404, and a heartbeat racing a booking on the same miner never
deadlocks (it did on PostgreSQL when the heartbeat locked the miner row before the GPU rows).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.coordinator.miner_support import credit, gpu_status, ok
from tests.support import (
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    auth,
    fresh_postgres_database,
    live_coordinator,
)

HEARTBEAT = "/v1/miners/heartbeat"


def _register_gpus(client: httpx.Client, key: str, count: int, tag: str) -> list[str]:
    ok(client.post("/v1/miners/register", json={}, headers=auth(key)))
    ids = []
    for n in range(count):
        gpu = {
            "name": "NVIDIA H100 80GB HBM3",
            "memory_gb": 80,
            "price_per_hour": "0.50",
            "uuid": f"GPU-{tag}-{n}",
        }
        resp = client.post("/v1/marketplace/gpu/register", json={"gpu": gpu}, headers=auth(key))
        ids.append(ok(resp, 201)["gpu_id"])
    return ids


def _beat_body(gpu_ids: list[str], tag: str, temperature: float) -> dict[str, Any]:
    return {
        "gpus": [
            {"gpu_id": gpu_id, "uuid": f"GPU-{tag}-{n}", "temperature_c": temperature}
            for n, gpu_id in enumerate(gpu_ids)
        ]
    }


def test_concurrent_heartbeats_each_get_their_own_answer(tmp_path: Path) -> None:
    with (
        live_coordinator(f"sqlite:///{tmp_path / 'c.db'}") as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        mine = _register_gpus(client, MINER_KEY, 4, "a")
        theirs = _register_gpus(client, MINER2_KEY, 2, "b")
        ok(client.delete("/v1/miners/host-02", headers=auth(MINER2_KEY)))  # now unregistered
        wrong_uuid = {"gpu_id": mine[0], "uuid": "GPU-not-this-one"}

        def send(n: int) -> httpx.Response:
            if n % 3 == 0:  # the deregistered miner: 404, and its GPUs keep no metrics
                body, key = _beat_body(theirs, "b", 99.0), MINER2_KEY
            elif n % 3 == 1:  # another miner's GPU and a wrong uuid: ignored, reported
                body = {"gpus": [{"gpu_id": theirs[0]}, wrong_uuid]}
                key = MINER_KEY
            else:
                body, key = _beat_body(mine, "a", 40.0 + n), MINER_KEY
            return client.post(HEARTBEAT, json=body, headers=auth(key))

        with ThreadPoolExecutor(max_workers=24) as pool:
            answers = list(pool.map(send, range(120)))
        for n, resp in enumerate(answers):
            if n % 3 == 0:
                assert resp.status_code == 404, resp.text
                assert resp.json()["detail"] == "miner not registered"
            else:
                assert resp.status_code == 200, resp.text
                ignored = resp.json()["ignored_gpus"]
                assert ignored == ([theirs[0], mine[0]] if n % 3 == 1 else [])
        shown = {g["id"]: g for g in ok(client.get("/v1/marketplace/gpu/list"))}
        assert all(shown[gpu_id]["status"] == "available" for gpu_id in mine)
        assert all(shown[gpu_id]["status"] == "offline" for gpu_id in theirs)
        for gpu_id in theirs:
            detail = ok(client.get(f"/v1/marketplace/gpu/{gpu_id}"))
            assert detail.get("temperature_c") in (None, 0), detail  # nothing was stored


@pytest.mark.postgres
def test_heartbeats_racing_bookings_on_one_miner_never_fail_on_postgres() -> None:
    """The deadlock: heartbeat locked miner then GPUs, booking share-locked a GPU then bumped
    the miner's lease version. 500s under load before; none now."""
    with (
        live_coordinator(fresh_postgres_database()) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        gpu_ids = _register_gpus(client, MINER_KEY, 8, "pg")
        credit(client, "alice", "100000")
        stop_at = time.monotonic() + 4.0
        statuses: list[int] = []
        lock = threading.Lock()

        def beat() -> None:
            body = _beat_body(gpu_ids, "pg", 50.0)
            while time.monotonic() < stop_at:
                resp = client.post(HEARTBEAT, json=body, headers=auth(MINER_KEY))
                with lock:
                    statuses.append(resp.status_code)

        def book_and_release(offset: int) -> None:
            n = offset
            while time.monotonic() < stop_at:
                gpu = gpu_ids[n % len(gpu_ids)]
                n += 1
                resp = client.post(
                    f"/v1/marketplace/gpu/{gpu}/book",
                    json={"duration_hours": 1},
                    headers=auth(CLIENT_KEY),
                )
                with lock:
                    statuses.append(resp.status_code)
                if resp.status_code == 201:
                    released = client.post(
                        f"/v1/marketplace/gpu/{gpu}/release", headers=auth(CLIENT_KEY)
                    )
                    with lock:
                        statuses.append(released.status_code)

        threads = [threading.Thread(target=beat) for _ in range(3)]
        threads += [threading.Thread(target=book_and_release, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses.count(201) >= 20  # bookings really raced the heartbeats
        assert set(statuses) <= {200, 201, 409}, sorted(set(statuses))
        assert all(gpu_status(client, gpu_id) == "available" for gpu_id in gpu_ids)
