"""Slow headers: thousands of connections that trickle their request headers and never finish.

Release 0.1.0 never timed such a connection out: about 20 000 of them exhausted the file
descriptors and `/health` was refused. Now a connection that has not sent its headers within
`header_timeout_s` (10 s) is closed (coordinator_stub/routes/slow_clients.py).

Protocol: one coordinator process (uvicorn, one worker) on a fresh SQLite file; this script, in
another process, opens `--connections` sockets that each send a request line and then one
header line every 2 s, never the blank line that ends the headers. Every second for
`--seconds` it counts the coordinator's open descriptors (/proc/PID/fd) and times a `/health`.
Prints JSON: descriptors at the peak and at the end, how many trickling sockets the server had
closed, and `/health` p50/max.

    .venv/bin/python bench/bench_slow_headers.py [--connections 2000] [--seconds 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_support import KEYS, free_port, start_coordinator, stop


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=16)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, args.connections * 2 + 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))  # both processes
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start_coordinator(
            {
                "COORDINATOR_DATABASE_URL": f"sqlite:///{Path(tmp) / 'coordinator.db'}",
                "COORDINATOR_BOOTSTRAP_KEYS": KEYS,
            },
            port=port,
        )
        try:
            base_fds = _fds(proc.pid)
            sockets = []
            for _ in range(args.connections):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setblocking(False)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                sockets.append(sock)
            closed: set[int] = set()
            fds, health_ms = [], []
            started = time.monotonic()
            next_trickle = started
            while time.monotonic() - started < args.seconds:
                if time.monotonic() >= next_trickle:
                    next_trickle += 2
                    for i, sock in enumerate(sockets):
                        if i in closed:
                            continue
                        try:
                            if sock.recv(1) == b"":
                                closed.add(i)
                                continue
                        except BlockingIOError:
                            pass
                        except OSError:
                            closed.add(i)
                            continue
                        try:
                            sock.sendall(b"X-Slow: 1\r\n")
                        except OSError:
                            closed.add(i)
                fds.append(_fds(proc.pid))
                t0 = time.perf_counter()
                ok = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
                health_ms.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))
                time.sleep(1)
            for sock in sockets:
                sock.close()
        finally:
            stop(proc)
    print(
        json.dumps(
            {
                "benchmark": "slow_headers",
                "cpus": os.cpu_count(),
                "connections": args.connections,
                "seconds": args.seconds,
                "coordinator_fds_idle": base_fds,
                "coordinator_fds_peak": max(fds),
                "coordinator_fds_at_end": fds[-1],
                "trickling_sockets_closed_by_server": len(closed),
                "health_p50_ms": round(statistics.median(health_ms), 2),
                "health_max_ms": round(max(health_ms), 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
