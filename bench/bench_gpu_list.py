"""Benchmark: filtered `GET /v1/marketplace/gpu/list` pages with 100 000 GPUs in the database.

Protocol (docs/benchmarks.md): one coordinator process (uvicorn, 1 worker) and the load generator in
another process on the same machine; SQLite in WAL mode (or `--database-url` for PostgreSQL);
the figures are the median over `--runs` (≥ 3) runs. Prints one JSON document.

Set-up writes the fleet straight into the database with bulk INSERTs (100 miners x 1000 GPUs,
8 models, 5 regions, seeded random models and prices; 10 % of the GPUs booked at random). The
coordinator runs with `COORDINATOR_OFFLINE_AFTER_S=86400` so the miners' one heartbeat keeps
their GPUs online for the whole run (the status rule itself is unchanged).

    python bench/bench_gpu_list.py [--gpus 100000] [--runs 3] [--requests 100]
    scripts/with-postgres.sh python bench/bench_gpu_list.py --postgres   # PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_support import free_port, miner_row, start_coordinator

MODELS = [
    ("NVIDIA H100 80GB HBM3", 80, 2.5),
    ("NVIDIA A100-SXM4-40GB", 40, 1.2),
    ("NVIDIA L40S", 48, 1.0),
    ("NVIDIA GeForce RTX 4090", 24, 0.5),
    ("NVIDIA GeForce RTX 3090", 24, 0.3),
    ("NVIDIA L4", 24, 0.25),
    ("NVIDIA A10", 24, 0.35),
    ("Tesla T4", 16, 0.12),
]
BOOKED_FRACTION = 0.1
REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"]
PG_URL_ENV = "TEST_POSTGRES_URL"

# The filtered pages a renter (or the legacy CLI, `limit=20 available=true`) asks for.
QUERIES: dict[str, dict[str, str]] = {
    "available_limit20": {"available": "true", "limit": "20"},
    "model_h100_available": {"available": "true", "model": "H100", "limit": "20"},
    "memory_price_limit100": {"memory_min": "40", "price_max": "2.0", "limit": "100"},
    "region_available_limit50": {"region": "eu-west", "available": "true", "limit": "50"},
    "cli_4090_filters": {
        "available": "true",
        "model": "RTX 4090",
        "memory_min": "24",
        "price_max": "0.6",
        "limit": "20",
    },
    "booked_limit20": {"status": "booked", "limit": "20"},
    "miner_limit100": {"miner_id": "host-042", "limit": "100"},
    "deep_page_offset2000": {"available": "true", "limit": "100", "offset": "2000"},
}


def populate(database_url: str, gpus: int) -> float:
    """Create the schema and bulk-insert the fleet; returns the seconds it took."""
    from sqlalchemy import insert

    from coordinator_stub.db.engine import Database
    from coordinator_stub.db.migrate import prepare_for_serve
    from coordinator_stub.db.models import Booking, Gpu, Miner

    started = time.perf_counter()
    rng = random.Random(42)
    now = datetime.now(UTC)
    db = Database(database_url)
    prepare_for_serve(db)
    miners = 100
    with db.write() as session:
        session.execute(
            insert(Miner),
            [
                miner_row(f"host-{m:03d}", now, region=REGIONS[m % len(REGIONS)])
                for m in range(miners)
            ],
        )
    rows: list[dict[str, Any]] = []
    bookings: list[dict[str, Any]] = []
    for n in range(gpus):
        model, memory_gb, list_price = MODELS[rng.randrange(len(MODELS))]
        miner = n % miners
        gpu_id = f"gpu_{n:016x}"
        price = Decimal(str(round(list_price * rng.uniform(0.7, 1.3), 4)))
        rows.append(
            {
                "id": gpu_id,
                "miner_id": f"host-{miner:03d}",
                "uuid": f"GPU-bench-{n}",
                "model": model,
                "memory_gb": memory_gb,
                "memory_mib": memory_gb * 1024,
                "region": REGIONS[miner % len(REGIONS)],
                "capabilities": ["cuda"],
                "price_per_hour": price,
                "health": "ok",
                "rating_sum": 0,
                "total_reviews": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        if rng.random() < BOOKED_FRACTION:
            bookings.append(
                {
                    "id": f"bk_{n:016x}",
                    "gpu_id": gpu_id,
                    "miner_id": f"host-{miner:03d}",
                    "client_id": "bench-client",
                    "duration_hours": 24.0,
                    "price_per_hour": price,
                    "base_price": price,
                    "total_cost": price * 24,
                    "pricing": {},
                    "status": "active",
                    "lease_state": "started",
                    "lease_generation": 1,
                    "start_time": now,
                    "end_time": now + timedelta(days=1),
                    "created_at": now,
                }
            )
    chunk = 5000
    for start in range(0, len(rows), chunk):
        with db.write() as session:
            session.execute(insert(Gpu), rows[start : start + chunk])
    for start in range(0, len(bookings), chunk):
        with db.write() as session:
            session.execute(insert(Booking), bookings[start : start + chunk])
    # Planner statistics, as autovacuum (PostgreSQL) or an operator (SQLite) would gather them.
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    db.dispose()
    return time.perf_counter() - started


def serve(database_url: str, port: int) -> subprocess.Popen[bytes]:
    # A day's offline_after_s: the miners' one heartbeat keeps their GPUs online all run long.
    return start_coordinator(
        {"COORDINATOR_DATABASE_URL": database_url, "COORDINATOR_OFFLINE_AFTER_S": "86400"},
        port=port,
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def load(base: str, requests: int) -> dict[str, Any]:
    """The load generator (its own process): `requests` per query, interleaved, one at a time."""
    timings: dict[str, list[float]] = {name: [] for name in QUERIES}
    sizes: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=10) as client:
        for name, params in QUERIES.items():  # warm-up, and check each query returns a page
            resp = client.get("/v1/marketplace/gpu/list", params=params)
            resp.raise_for_status()
            sizes[name] = len(resp.json())
        for _ in range(requests):
            for name, params in QUERIES.items():
                started = time.perf_counter()
                resp = client.get("/v1/marketplace/gpu/list", params=params)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if resp.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {resp.status_code}")
                timings[name].append(elapsed_ms)
    every = [t for values in timings.values() for t in values]
    return {
        "overall": {"p50_ms": percentile(every, 50), "p99_ms": percentile(every, 99)},
        "queries": {
            name: {
                "items": sizes[name],
                "p50_ms": percentile(values, 50),
                "p99_ms": percentile(values, 99),
            }
            for name, values in timings.items()
        },
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(path: list[str]) -> float:
        values = []
        for run in runs:
            node: Any = run
            for key in path:
                node = node[key]
            values.append(node)
        return round(statistics.median(values), 2)

    return {
        "overall": {k: med(["overall", k]) for k in ("p50_ms", "p99_ms")},
        "queries": {
            name: {
                "items": runs[0]["queries"][name]["items"],
                **{k: med(["queries", name, k]) for k in ("p50_ms", "p99_ms")},
            }
            for name in QUERIES
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100, help="per query per run")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help=f"use the empty database in ${PG_URL_ENV} (scripts/with-postgres.sh sets it)",
    )
    parser.add_argument("--load", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:  # child mode: the load generator process
        print(json.dumps(load(args.load, args.requests)))
        return 0

    if args.postgres:
        if not os.environ.get(PG_URL_ENV):
            parser.error(f"--postgres needs ${PG_URL_ENV}: run under scripts/with-postgres.sh")
        args.database_url = os.environ[PG_URL_ENV]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-list-") as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        setup_s = populate(database_url, args.gpus)
        port = free_port()
        proc = serve(database_url, port)
        try:
            runs = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        *("--load", f"http://127.0.0.1:{port}", "--requests", str(args.requests)),
                    ],
                    check=False,
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
                runs.append(json.loads(out.stdout))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    summary = median_of(runs)
    result = {
        "benchmark": "gpu_list",
        "database": "sqlite" if database_url.startswith("sqlite") else "postgresql",
        "gpus": args.gpus,
        "booked_fraction": BOOKED_FRACTION,
        "runs": args.runs,
        "requests_per_query_per_run": args.requests,
        "concurrency": 1,
        "populate_s": round(setup_s, 2),
        "median_of_runs": summary,
        "target_p99_ms": 50,
        "meets_target": summary["overall"]["p99_ms"] < 50,
        "cpu_count": os.cpu_count(),
        # Other work on the machine shows up in p99: the 1-minute load average before and after.
        "loadavg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
