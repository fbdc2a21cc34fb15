"""Agent resources: RSS and CPU of `aitbc-agent run` at 8 simulated GPUs, 10 s heartbeat.

Protocol (docs/benchmarks.md): one coordinator process (uvicorn, one
worker, fresh SQLite) and one agent process with 8 simulated GPUs at the default 10 s heartbeat
(registered, heartbeating, lease long poll open). After `--warmup` seconds, the agent's CPU time
(utime + stime from /proc/<pid>/stat) is taken over `--duration` seconds and its RSS sampled
every second (VmRSS; VmHWM is the peak). Each run uses fresh processes; the JSON reports every
run and the medians.

    .venv/bin/python bench/bench_agent_resources.py [--duration 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_support import agent, coordinator, machine, wait_available


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def one_run(duration_s: float, warmup_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        work = Path(tmp)
        with coordinator(work) as base, agent(work, base, gpus=8, heartbeat_interval_s=10) as proc:
            with httpx.Client(base_url=base, timeout=10) as http:
                wait_available(http, 8)
            time.sleep(warmup_s)
            cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
            rss: list[int] = []
            while time.monotonic() - t0 < duration_s:
                rss.append(_status_kib(proc.pid, "VmRSS"))
                time.sleep(1)
            cpu_s, wall_s = _cpu_s(proc.pid) - cpu0, time.monotonic() - t0
            hwm = _status_kib(proc.pid, "VmHWM")
    return {
        "duration_s": round(wall_s, 1),
        "cpu_s": round(cpu_s, 3),
        "cpu_pct_of_one_core": round(100 * cpu_s / wall_s, 3),
        "rss_mib_median": round(statistics.median(rss) / 1024, 1),
        "rss_mib_max": round(max(rss) / 1024, 1),
        "rss_mib_peak_hwm": round(hwm / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run(args.duration, args.warmup) for _ in range(args.runs)]
    cpu = statistics.median(r["cpu_pct_of_one_core"] for r in runs)
    rss = statistics.median(r["rss_mib_max"] for r in runs)
    doc = {
        "benchmark": "agent_resources_8_gpus_10s_heartbeat",
        "machine": machine(),
        "runs": runs,
        "cpu_pct_of_one_core_median": cpu,
        "rss_mib_max_median": rss,
        "targets": {"cpu_pct_of_one_core": 1.0, "rss_mib": 60},
        "meets_targets": cpu < 1.0 and rss < 60,
    }
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
