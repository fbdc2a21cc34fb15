"""Shared test helpers: free ports, a settable clock, PostgreSQL databases, live coordinators."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TypeVar

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
PG_URL_ENV = "TEST_POSTGRES_URL"

# Bootstrap keys must be at least 32 characters long.
ADMIN_KEY = "test-admin-key-0123456789abcdef0123"
MINER_KEY = "test-miner-key-0123456789abcdef0123"
MINER2_KEY = "test-miner2-key-0123456789abcdef012"
CLIENT_KEY = "test-client-key-0123456789abcdef012"
CLIENT2_KEY = "test-client2-key-0123456789abcdef01"
BOOTSTRAP_KEYS = (
    f"admin:ops:{ADMIN_KEY},miner:host-01:{MINER_KEY},miner:host-02:{MINER2_KEY},"
    f"client:alice:{CLIENT_KEY},client:bob:{CLIENT2_KEY}"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeClock:
    """A clock the test moves by hand; the app reads it through `create_app(clock=...)`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def postgres_base_url() -> str:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"{PG_URL_ENV} not set (make test starts a throwaway PostgreSQL)")
    return url


def fresh_postgres_database() -> str:
    """Create an empty database on the test server; returns its SQLAlchemy URL."""
    import psycopg

    base = postgres_base_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + f"/{name}"


def database_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'coordinator.db'}"
    return fresh_postgres_database()


def auth(key: str) -> dict[str, str]:
    return {"X-Api-Key": key}


@contextmanager
def live_coordinator(
    db_url: str,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[str]:
    """A real `aitbc-coordinator serve` process on a loopback port; yields its base URL.

    Its stderr (the log) goes to `log_path` when given, else to a temporary file.
    """
    port = port or free_port()
    full_env = {
        **os.environ,
        "COORDINATOR_BOOTSTRAP_KEYS": BOOTSTRAP_KEYS,
        "COORDINATOR_DATABASE_URL": db_url,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    # stderr goes to a file, not a pipe: a pipe nobody drains blocks the server once it fills.
    log: IO[bytes]
    if log_path is None:  # noqa: SIM108 (one noqa per open is clearer than a ternary)
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finally)
    else:
        log = log_path.open("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator_stub", "serve", "--port", str(port)],
        env=full_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_until_healthy(
    base: str, proc: subprocess.Popen[bytes], log: IO[bytes] | None = None, timeout_s: float = 30
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = ""
            if log is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
            raise RuntimeError(f"coordinator exited with {proc.returncode}: {err[-2000:]}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"coordinator at {base} not ready after {timeout_s}s")


T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout_s: float = 10, every_s: float = 0.05
) -> T:
    """Call `probe` until it returns something truthy; AssertionError naming `what` if not."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")
