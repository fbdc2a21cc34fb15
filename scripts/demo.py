"""`make demo`: a coordinator, an agent and a renter on this machine, step by step.

Starts the coordinator on a temporary SQLite file and an agent — on the real GPUs when NVML
finds some, otherwise on simulated ones (it says which and why) — then a renter books a GPU,
the agent runs its on_start hook, the renter releases it, the agent runs on_end, and the GPU is
available again. Exits 0 when every step happened, 1 otherwise; always stops what it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parent.parent
# Bootstrap keys must be at least 32 characters; these are for a throwaway demo only.
ADMIN_KEY = "demo-admin-key-not-secret-0123456789"
MINER_KEY = "demo-miner-key-not-secret-0123456789"
CLIENT_KEY = "demo-client-key-not-secret-012345678"
KEYS = f"admin:ops:{ADMIN_KEY},miner:demo-host:{MINER_KEY},client:alice:{CLIENT_KEY}"
STEP_TIMEOUT_S = 15
T = TypeVar("T")
T0 = time.monotonic()


class DemoError(Exception):
    """A step did not happen in time."""


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.2f}s] {text}", flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = STEP_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise DemoError(f"{what} did not happen within {timeout_s:.0f}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def choose_backend() -> tuple[str, str]:
    """("nvml" | "simulated", why): ask the agent's own backend factory, never guess."""
    from agent.config import GpuSettings
    from agent.gpu import open_backend
    from agent.gpu.errors import GpuAccessError

    try:
        backend = open_backend(GpuSettings(backend="nvml"))
    except GpuAccessError as exc:
        return "simulated", f"NVML unavailable ({exc})"
    try:
        count = len(backend.gpus())
    finally:
        backend.close()
    if count == 0:
        return "simulated", "NVML found no GPU"
    return "nvml", f"NVML found {count} GPU(s)"


class AgentLog(threading.Thread):
    """Reads the agent's stderr: shows hook output as it comes, keeps the JSON events."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                self.events.append(event)
                if event.get("event") == "hook_output":  # a hook's line, as the agent logs it
                    say(f"    │ {event.get('line', '')}")
            elif line:
                say(f"    │ {line}")

    def find(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)


def main() -> int:
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="aitbc-demo-") as tmp:
        work = Path(tmp)
        try:
            return run_demo(work, procs)
        except (DemoError, httpx.HTTPError, AssertionError) as exc:
            print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def run_demo(work: Path, procs: list[subprocess.Popen[bytes]]) -> int:
    backend, why = choose_backend()
    say(f"GPU backend: {backend} — {why}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = work / "coordinator.db"
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "coordinator_stub", "serve", "--port", str(port)],
        cwd=REPO,
        env={
            **os.environ,
            "COORDINATOR_DATABASE_URL": f"sqlite:///{db}",
            "COORDINATOR_BOOTSTRAP_KEYS": KEYS,
            "COORDINATOR_HEARTBEAT_INTERVAL_S": "1",
            "COORDINATOR_OFFLINE_AFTER_S": "5",
            "COORDINATOR_LOG_LEVEL": "warning",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(coordinator)
    http = httpx.Client(base_url=base, timeout=10)

    def healthy() -> bool:
        if coordinator.poll() is not None:
            raise DemoError(f"the coordinator exited with {coordinator.returncode}")
        try:
            return http.get("/health/ready").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("coordinator ready", healthy, timeout_s=30)
    say(f"coordinator listening on {base} (SQLite {db})")

    hook = work / "hook.sh"
    hook.write_text(
        "#!/bin/sh\n"
        'echo "$1 hook: lease $AITBC_LEASE_ID on GPU $AITBC_GPU_INDEX ($AITBC_GPU_UUID)'
        ' for $AITBC_CLIENT_ID, ends $AITBC_LEASE_END"\n'
    )
    hook.chmod(0o755)
    simulated = (
        '[[gpu.simulated]]\nmodel = "NVIDIA H100 80GB HBM3"\nmemory_mib = 81559\ncount = 4\n'
        "utilization_pct = [3, 35, 80]\n"
        if backend == "simulated"
        else ""
    )
    config = work / "agent.toml"
    config.write_text(
        f'[coordinator]\nurl = "{base}"\napi_key = "{MINER_KEY}"\nminer_id = "demo-host"\n'
        f'[agent]\nstate_dir = "{work / "agent-state"}"\nheartbeat_interval_s = 1\n'
        f'region = "demo"\n[gpu]\nbackend = "{backend}"\nprice_per_hour = "0.50"\n{simulated}'
        f'[leases]\non_start = ["{hook}", "on_start"]\non_end = ["{hook}", "on_end"]\n'
        "hook_timeout_s = 10\n"
    )
    started = time.monotonic()
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    procs.append(agent)
    log = AgentLog(agent.stderr)
    log.start()

    def gpus() -> list[dict[str, Any]]:
        if agent.poll() is not None:
            tail = "\n".join(log.lines[-5:])
            raise DemoError(f"the agent exited with {agent.returncode}:\n{tail}")
        r = http.get("/v1/marketplace/gpu/list")
        r.raise_for_status()
        return list(r.json())

    def ready(g: dict[str, Any]) -> bool:
        return bool(g["status"] == "available" and g["metrics"]["utilization_pct"] is not None)

    listed = wait_for(
        "GPUs available with metrics", lambda: (g := gpus()) and all(map(ready, g)) and g
    )
    say(f"agent registered {len(listed)} GPU(s) in {time.monotonic() - started:.2f}s:")
    for g in listed:
        m = g["metrics"]
        say(
            f"    {g['id']}  {g['model']}  {g['memory_gb']} GiB  {g['price_per_hour']} AITBC/h  "
            f"{g['status']}  util {m['utilization_pct']} %  {m['temperature_c']} °C"
        )

    r = http.post(
        "/v1/admin/accounts/alice/credit", json={"amount": "100"}, headers={"X-Api-Key": ADMIN_KEY}
    )
    r.raise_for_status()
    say("renter alice credited with 100 AITBC")

    gpu_id = listed[0]["id"]
    client = {"X-Api-Key": CLIENT_KEY}
    booked_at = time.monotonic()
    r = http.post(f"/v1/marketplace/gpu/{gpu_id}/book", json={"duration_hours": 1}, headers=client)
    if r.status_code != 201:
        raise DemoError(f"booking failed: {r.status_code} {r.text}")
    booking = r.json()
    say(
        f"alice booked {gpu_id} for 1 h at {booking['price_per_hour']} AITBC/h "
        f"(total {booking['total_cost']}): booking {booking['booking_id']}"
    )
    multiplier = booking["pricing_factors"].get("multiplier", "1")
    market = {
        -1: "little of this model is booked, so the price sits below list",
        0: "the market is balanced, so the price is the list price",
        1: "this model is in demand, so the price is above list",
    }[(Decimal(multiplier) > 1) - (Decimal(multiplier) < 1)]
    say(
        f"    │ price = list {booking['base_price']} x market multiplier {multiplier}: {market} "
        "(docs/renter-quickstart.md, 'What a GPU costs')"
    )

    def lease_state() -> str | None:
        current = http.get(f"/v1/marketplace/gpu/{gpu_id}").json().get("current_booking")
        return None if current is None else current.get("lease_state")

    wait_for("lease started", lambda: lease_state() == "started")
    took_s = time.monotonic() - booked_at
    say(f"agent ran on_start and acked: lease_state started {took_s:.3f}s after booking")

    released_at = time.monotonic()
    r = http.post(f"/v1/marketplace/gpu/{gpu_id}/release", headers=client)
    r.raise_for_status()
    say(f"alice released {gpu_id}: refund {r.json()['refund']} AITBC")
    say(
        f"    │ refund = 50 % of the unused time's share of {booking['total_cost']}; the "
        "seconds used are paid in full (docs/renter-quickstart.md, 'Ending early')"
    )

    def stopped() -> bool:
        orders = http.get("/v1/marketplace/orders", headers=client).json()
        return any(
            o["booking_id"] == booking["booking_id"] and o["lease_state"] == "stopped"
            for o in orders
        )

    wait_for("lease stopped", stopped)
    took_s = time.monotonic() - released_at
    say(f"agent ran on_end and acked: lease_state stopped {took_s:.3f}s after release")
    status = http.get(f"/v1/marketplace/gpu/{gpu_id}").json()["status"]
    if status != "available":
        raise DemoError(f"{gpu_id} is {status}, not available")
    say(f"{gpu_id} is available again")

    agent.send_signal(signal.SIGTERM)
    code = agent.wait(10)
    statuses = {g["status"] for g in gpus_after(http)}
    say(f"agent stopped (exit {code}); its GPUs are now {', '.join(sorted(statuses))}")
    if code != 0 or log.find("lease_started") is None or log.find("lease_stopped") is None:
        raise DemoError("the agent did not log a full lease cycle")
    say(f"demo finished in {time.monotonic() - T0:.1f}s")
    return 0


def gpus_after(http: httpx.Client) -> list[dict[str, Any]]:
    r = http.get("/v1/marketplace/gpu/list")
    r.raise_for_status()
    return list(r.json())


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
