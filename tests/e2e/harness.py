"""End-to-end helpers: a real agent process, a renter, a notify socket, and waiting.

The agent runs as `python -m agent run --config <tmp toml>` with simulated GPUs, short
intervals and a controllable hook (`hook.sh`): every run appends `<phase> begin|end <lease>` to
`hooks.log`, and a phase waits while its gate file `gate-<phase>` exists. Every process a test
starts is killed in a `finally` (the fixtures in conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, REPO, auth, wait_for

HEARTBEAT_S = 0.5
OFFLINE_AFTER_S = 2.0
COORDINATOR_ENV = {
    "COORDINATOR_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
    "COORDINATOR_OFFLINE_AFTER_S": str(OFFLINE_AFTER_S),
    "COORDINATOR_SWEEP_INTERVAL_S": "0.2",
    "COORDINATOR_LOG_LEVEL": "warning",
    # Leases of a few seconds, so a test sees the agent end one at end_time without waiting
    # the production floor of a minute (the floor itself: tests/coordinator/market).
    "COORDINATOR_MIN_BOOKING_S": "0",
}
SECONDS_PER_HOUR = 3600.0

HOOK_SCRIPT = """#!/bin/sh
# $1 = start | end; records begin/end and honours a gate file (tests hold a hook open with it)
dir="$(dirname "$0")"
lease="$AITBC_LEASE_ID $AITBC_GPU_UUID $AITBC_GPU_INDEX $AITBC_CLIENT_ID $AITBC_LEASE_END"
echo "$1 begin $lease $(date +%s.%N)" >> "$dir/hooks.log"
echo "hook: lease $AITBC_LEASE_ID $1"
while [ -e "$dir/gate-$1" ]; do sleep 0.02; done
echo "$1 end $AITBC_LEASE_ID $(date +%s.%N)" >> "$dir/hooks.log"
"""


class NotifySocket:
    """A unix datagram socket standing in for systemd's $NOTIFY_SOCKET; records messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        return [text for _, text in self.messages]

    def first(self, prefix: str) -> float | None:
        """Arrival time of the first message containing a line starting with `prefix`."""
        for at, text in self.messages:
            if any(line.startswith(prefix) for line in text.splitlines()):
                return at
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


class Agent:
    """One `python -m agent run` process with its own config, state dir, hook and logs."""

    def __init__(
        self,
        workdir: Path,
        coordinator_url: str | list[str],
        *,
        gpus: int = 4,
        faults: list[dict[str, Any]] | None = None,
        heartbeat_interval_s: float = HEARTBEAT_S,
        watchdog_usec: int | None = None,
        extra_toml: str = "",
        gpu_toml: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "agent.toml"
        self.state_dir = self.dir / "state"
        self.hook = self.dir / "hook.sh"
        self.hook.write_text(HOOK_SCRIPT)
        self.hook.chmod(0o755)
        self.hooks_log = self.dir / "hooks.log"
        self.watchdog_usec = watchdog_usec
        self.extra_env = dict(env or {})
        fault_toml = "".join(
            "\n[[gpu.simulated.faults]]\n"
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in f.items())
            for f in faults or []
        )
        gpu_section = gpu_toml
        if gpu_section is None:
            gpu_section = f"""[gpu]
backend = "simulated"
price_per_hour = "0.50"

[[gpu.simulated]]
model = "NVIDIA H100 80GB HBM3"
memory_mib = 81559
count = {gpus}
utilization_pct = [10, 40, 70]
{fault_toml}"""
        self.config.write_text(
            f"""
[coordinator]
url = {json.dumps(coordinator_url)}
api_key = "{MINER_KEY}"
miner_id = "host-01"
timeout_s = 2

[agent]
state_dir = "{self.state_dir}"
heartbeat_interval_s = {heartbeat_interval_s}

{gpu_section}
[leases]
on_start = ["{self.hook}", "start"]
on_end = ["{self.hook}", "end"]
hook_timeout_s = 60

[health]
recover_after_ok_samples = 10000
{extra_toml}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifySocket | None = None
        self.starts = 0

    # -- process control --------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True) -> Agent:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        if self.notify is not None:
            self.notify.close()
        sock = self.dir / f"notify-{self.starts}.sock"
        self.notify = NotifySocket(sock)
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(sock),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        env.pop("WATCHDOG_PID", None)
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        self.stdout = (self.dir / f"stdout-{self.starts}.log").open("wb")
        self.stderr_path = self.dir / f"stderr-{self.starts}.log"
        self.stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "--log-level",
                "debug",
                "run",
                "--config",
                str(self.config),
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
        )
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 20) -> float:
        assert self.notify is not None
        assert self.proc is not None
        proc = self.proc

        def ready() -> float | None:
            if proc.poll() is not None:
                raise AssertionError(f"agent exited with {proc.returncode}: {self.log_tail()}")
            return self.notify.first("READY=1") if self.notify else None

        return wait_for("agent READY=1", ready, timeout_s=timeout_s)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_files()

    def terminate(self, timeout_s: float = 10) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self._close_files()
        return code

    def cpu_seconds(self) -> float:
        """User + system CPU time of the agent process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _close_files(self) -> None:
        for f in (self.stdout, self.stderr):
            f.close()

    def stop(self) -> None:
        """Kill whatever is still running (the fixtures' finally)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self._close_files()
        if self.notify is not None:
            self.notify.close()
        # A hook held open by a gate outlives a killed agent: open every gate so it ends.
        for gate in self.dir.glob("gate-*"):
            gate.unlink()

    # -- what it did -------------------------------------------------------------------------

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.dir.glob("stderr-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if name is None or event.get("event") == name:
                    out.append(event)
        return out

    def log_tail(self, n: int = 30) -> str:
        lines: list[str] = []
        for path in sorted(self.dir.glob("stderr-*.log")):
            lines += path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stdout_text(self) -> str:
        return "".join(p.read_text() for p in sorted(self.dir.glob("stdout-*.log")))

    def hook_runs(self, phase: str, which: str = "begin") -> list[list[str]]:
        if not self.hooks_log.exists():
            return []
        return [
            line.split()
            for line in self.hooks_log.read_text().splitlines()
            if line.startswith(f"{phase} {which} ")
        ]

    def hold(self, phase: str) -> Path:
        """Make the next `phase` hook wait until `release_hold(phase)`."""
        gate = self.dir / f"gate-{phase}"
        gate.touch()
        return gate

    def release_hold(self, phase: str) -> None:
        (self.dir / f"gate-{phase}").unlink(missing_ok=True)

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())


class Renter:
    """The renter (client `alice`) and the operator (admin) over HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=10)

    def close(self) -> None:
        self.http.close()

    def credit(self, amount: str = "100") -> None:
        r = self.http.post(
            "/v1/admin/accounts/alice/credit", json={"amount": amount}, headers=auth(ADMIN_KEY)
        )
        assert r.status_code == 200, r.text

    def gpus(self) -> list[dict[str, Any]]:
        r = self.http.get("/v1/marketplace/gpu/list", params={"limit": 500})
        assert r.status_code == 200, r.text
        return list(r.json())

    def gpu(self, gpu_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/marketplace/gpu/{gpu_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def statuses(self) -> list[str]:
        return sorted(g["status"] for g in self.gpus())

    def book(self, gpu_id: str, duration_s: float) -> httpx.Response:
        return self.http.post(
            f"/v1/marketplace/gpu/{gpu_id}/book",
            json={"duration_hours": duration_s / SECONDS_PER_HOUR},
            headers=auth(CLIENT_KEY),
        )

    def book_ok(self, gpu_id: str, duration_s: float) -> dict[str, Any]:
        r = self.book(gpu_id, duration_s)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def release(self, gpu_id: str) -> dict[str, Any]:
        r = self.http.post(f"/v1/marketplace/gpu/{gpu_id}/release", headers=auth(CLIENT_KEY))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def order(self, booking_id: str) -> dict[str, Any]:
        r = self.http.get("/v1/marketplace/orders", headers=auth(CLIENT_KEY))
        assert r.status_code == 200, r.text
        [order] = [o for o in r.json() if o["booking_id"] == booking_id]
        return dict(order)

    def lease_state(self, gpu_id: str) -> str | None:
        booking = self.gpu(gpu_id).get("current_booking")
        return None if booking is None else booking.get("lease_state")

    def balance(self) -> dict[str, Any]:
        r = self.http.get("/v1/accounts/me", headers=auth(CLIENT_KEY))
        assert r.status_code == 200, r.text
        return dict(r.json())
