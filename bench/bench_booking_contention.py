"""Booking contention: many renters book the same GPU at once; exactly one may win (docs/api.md).

Protocol (docs/benchmarks.md): one coordinator process (uvicorn, one worker) on a fresh SQLite file
in WAL mode, or on `--database-url` (PostgreSQL with its defaults); this script is the load
generator in another process. Each round registers a fresh GPU (and heartbeats its miner so it is
available), then `--concurrency` threads, released together by a barrier, each send one book
request for it from their own connection. Every round must end with exactly one 201 and the rest
409; the JSON reports that check, the latency of the contended requests (p50/p99) and the burst's
throughput, per run and as the median over `--runs` runs (fresh processes each run).

    .venv/bin/python bench/bench_booking_contention.py [--rounds 20] [--concurrency 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, coordinator, machine


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _burst(base: str, gpu_id: str, concurrency: int) -> tuple[Counter[int], list[float], float]:
    barrier = threading.Barrier(concurrency + 1)
    codes: list[int] = []
    latencies: list[float] = []
    lock = threading.Lock()
    clients = [httpx.Client(base_url=base, timeout=30) for _ in range(concurrency)]
    for c in clients:  # open each connection before the burst, so the burst is only booking
        c.get("/health/live").raise_for_status()

    def worker(http: httpx.Client) -> None:
        barrier.wait()
        started = time.perf_counter()
        r = http.post(
            f"/v1/marketplace/gpu/{gpu_id}/book",
            json={"gpu_id": gpu_id, "duration_hours": 1},
            headers={"X-Api-Key": CLIENT_KEY},
        )
        elapsed = time.perf_counter() - started
        with lock:
            codes.append(r.status_code)
            latencies.append(elapsed)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    barrier.wait()
    burst_started = time.perf_counter()
    for t in threads:
        t.join()
    burst_s = time.perf_counter() - burst_started
    for c in clients:
        c.close()
    return Counter(codes), latencies, burst_s


def one_run(rounds: int, concurrency: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-book-") as tmp:
        env = {"COORDINATOR_DATABASE_URL": database_url} if database_url else None
        with coordinator(Path(tmp), env=env) as base:
            http = httpx.Client(base_url=base, timeout=30)
            miner = {"X-Api-Key": MINER_KEY}
            http.post(
                "/v1/admin/accounts/alice/credit",
                json={"amount": "1000000"},
                headers={"X-Api-Key": ADMIN_KEY},
            ).raise_for_status()
            all_latencies: list[float] = []
            burst_rates: list[float] = []
            rounds_ok = 0
            outcomes: Counter[int] = Counter()
            run_tag = secrets.token_hex(4)
            for n in range(rounds):
                gpu = {"name": "NVIDIA H100 80GB HBM3", "memory_gb": 80, "price_per_hour": "1.5"}
                gpu["uuid"] = f"GPU-bench-{run_tag}-{n}"  # fresh even on a reused database
                r = http.post("/v1/marketplace/gpu/register", json={"gpu": gpu}, headers=miner)
                r.raise_for_status()
                http.post("/v1/miners/register", json={}, headers=miner).raise_for_status()
                codes, latencies, burst_s = _burst(base, r.json()["gpu_id"], concurrency)
                outcomes.update(codes)
                rounds_ok += codes == Counter({201: 1, 409: concurrency - 1})
                all_latencies += latencies
                burst_rates.append(concurrency / burst_s)
            http.close()
    return {
        "rounds": rounds,
        "rounds_with_exactly_one_winner": rounds_ok,
        "status_codes": {str(k): v for k, v in sorted(outcomes.items())},
        "latency_p50_ms": round(_quantile(all_latencies, 0.50) * 1000, 2),
        "latency_p99_ms": round(_quantile(all_latencies, 0.99) * 1000, 2),
        "burst_requests_per_s": round(statistics.median(burst_rates), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per run")
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}", file=sys.stderr, flush=True)
        runs.append(one_run(args.rounds, args.concurrency, args.database_url))
    report = {
        "benchmark": "booking_contention",
        "machine": machine(),
        "database": "postgresql" if args.database_url else "sqlite",
        "concurrency": args.concurrency,
        "all_rounds_exactly_one_winner": all(
            r["rounds_with_exactly_one_winner"] == r["rounds"] for r in runs
        ),
        "median": {
            key: statistics.median(r[key] for r in runs)
            for key in ("latency_p50_ms", "latency_p99_ms", "burst_requests_per_s")
        },
        "runs": runs,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["all_rounds_exactly_one_winner"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
