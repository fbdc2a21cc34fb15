"""Shared by the benchmarks: a coordinator and an agent as real processes on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
# Bootstrap keys must be at least 32 characters.
ADMIN_KEY = "bench-admin-key-0123456789abcdef012"
MINER_KEY = "bench-miner-key-0123456789abcdef012"
CLIENT_KEY = "bench-client-key-0123456789abcdef01"
KEYS = f"admin:ops:{ADMIN_KEY},miner:bench-host:{MINER_KEY},client:alice:{CLIENT_KEY}"


def miner_row(miner_id: str, now: Any, **columns: Any) -> dict[str, Any]:
    """A `miners` row as registration leaves it, for benchmarks that fill the database
    directly (`insert(Miner)`): just heartbeated, no leases yet."""
    return {
        "id": miner_id,
        "concurrency": 1,
        "capabilities": {},
        "agent": {},
        "registered_at": now,
        "last_heartbeat_at": now,
        "lease_version": 0,
        "inflight": 0,
        **columns,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_coordinator(
    env: dict[str, str], *, port: int, prefix: list[str] | None = None, timeout_s: float = 60
) -> subprocess.Popen[bytes]:
    """`aitbc-coordinator serve` (uvicorn, one worker) on `port`, returned once it is ready.

    `env` is added to this process's environment (the COORDINATOR_* settings); `prefix` wraps
    the command (e.g. `py-spy record ... --`). Its stderr goes to a temporary file whose tail
    is in the error if it exits or never becomes ready; with $BENCH_LOG_DIR set, it is kept
    there as coordinator-<port>.log instead. The log level is `warning` (no access log) unless
    $COORDINATOR_LOG_LEVEL says otherwise: `info` measures the access log's cost.
    """
    log_dir = os.environ.get("BENCH_LOG_DIR")
    # Closed when the process is reaped or fails.
    log = (
        tempfile.TemporaryFile()  # noqa: SIM115
        if not log_dir
        else (Path(log_dir) / f"coordinator-{port}.log").open("w+b")
    )
    proc = subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "coordinator_stub", "serve", "--port", str(port)],
        cwd=REPO,
        env={"COORDINATOR_LOG_LEVEL": "warning", **os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            log.close()
            raise RuntimeError(f"coordinator not ready (exit {proc.returncode}): {tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return proc
        time.sleep(0.1)


@contextlib.contextmanager
def coordinator(workdir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A coordinator on a fresh SQLite file in `workdir` (unless `env` names another database);
    yields its URL."""
    port = free_port()
    proc = start_coordinator(
        {
            "COORDINATOR_DATABASE_URL": f"sqlite:///{workdir / 'coordinator.db'}",
            "COORDINATOR_BOOTSTRAP_KEYS": KEYS,
            **(env or {}),
        },
        port=port,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextlib.contextmanager
def agent(
    workdir: Path,
    base: str,
    *,
    gpus: int,
    heartbeat_interval_s: float,
    on_start: list[str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`aitbc-agent run` with `gpus` simulated GPUs; stderr (JSON log lines) to agent.log."""
    config = workdir / "agent.toml"
    config.write_text(
        f'[coordinator]\nurl = "{base}"\napi_key = "{MINER_KEY}"\nminer_id = "bench-host"\n'
        f'[agent]\nstate_dir = "{workdir / "state"}"\n'
        f"heartbeat_interval_s = {heartbeat_interval_s}\n"
        '[gpu]\nbackend = "simulated"\n'
        '[[gpu.simulated]]\nmodel = "NVIDIA H100 80GB HBM3"\nmemory_mib = 81559\n'
        f"count = {gpus}\nutilization_pct = [5, 50, 95]\n"
        f"[leases]\non_start = {json.dumps(on_start or [])}\n"
    )
    with (workdir / "agent.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            yield proc
        finally:
            stop(proc)


def wait_available(http: httpx.Client, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Wait until `count` GPUs are available with metrics; returns them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = http.get("/v1/marketplace/gpu/list", params={"limit": 500})
        r.raise_for_status()
        gpus = r.json()
        ready = [
            g
            for g in gpus
            if g["status"] == "available" and g["metrics"]["utilization_pct"] is not None
        ]
        if len(ready) >= count:
            return list(ready)
        time.sleep(0.05)
    raise RuntimeError(f"{count} GPUs not available after {timeout_s}s")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }
