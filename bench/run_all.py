"""`make bench`: run every benchmark in its own process and print one JSON document.

Each benchmark prints its own JSON on stdout (progress goes to stderr); this collects them under
their names, with the machine they ran on. Run one alone for its options (`--help`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# Name → script and arguments. Heavy ones keep their documented defaults (docs/benchmarks.md).
BENCHMARKS: dict[str, list[str]] = {
    "gpu_sample": ["bench_gpu_sample.py"],
    "gpu_list_sqlite": ["bench_gpu_list.py"],
    "heartbeat_ingest": ["bench_heartbeat.py"],
    "booking_contention_sqlite": ["bench_booking_contention.py"],
    "lease_latency": ["bench_lease_latency.py"],
    "agent_resources": ["bench_agent_resources.py"],
    "console_first_load": ["bench_console_load.py"],
    "fleet_1000_hosts_sqlite": ["bench_fleet.py", "--hosts", "1000", "--duration", "30"],
}
# With a PostgreSQL to use (`make bench` runs under scripts/with-postgres.sh), its variants too.
PG_URL = os.environ.get("TEST_POSTGRES_URL")
if PG_URL:
    # Contention first: it adds only a few GPUs, the list benchmark then adds its 100 000.
    BENCHMARKS["booking_contention_postgres"] = [
        "bench_booking_contention.py",
        "--database-url",
        PG_URL,
    ]
    BENCHMARKS["gpu_list_postgres"] = ["bench_gpu_list.py", "--postgres"]
    BENCHMARKS["fleet_1000_hosts_2_coordinators"] = [
        "bench_fleet.py",
        "--hosts",
        "1000",
        "--duration",
        "30",
        "--coordinators",
        "2",
    ]


def run_one(args: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(BENCH / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, Any] = {"exit_code": proc.returncode, "wall_s": time.monotonic() - started}
    try:
        result["result"] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result["error"] = (proc.stderr or proc.stdout)[-2000:]
    return result


def main() -> int:
    only = set(sys.argv[1:])
    unknown = only - BENCHMARKS.keys()
    if unknown:
        print(
            f"unknown benchmark(s): {sorted(unknown)}; known: {sorted(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "benchmarks": {},
    }
    failed = False
    for name, args in BENCHMARKS.items():
        if only and name not in only:
            continue
        if not (BENCH / args[0]).exists():
            continue
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        outcome = run_one(args)
        failed |= outcome["exit_code"] != 0
        report["benchmarks"][name] = outcome
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
