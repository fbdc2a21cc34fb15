"""Fixtures of the end-to-end tier: a restartable live coordinator, agents, a renter."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import COORDINATOR_ENV, Agent, Renter
from tests.support import free_port, live_coordinator


class Coordinator:
    """`aitbc-coordinator serve` on a fixed loopback port that a test may stop and restart."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{tmp_path / 'coordinator.db'}"
        self.env = env
        self._stack: ExitStack | None = None

    @property
    def running(self) -> bool:
        return self._stack is not None

    def start(self, db_url: str | None = None) -> None:
        assert self._stack is None
        if db_url is not None:
            self.db_url = db_url
        stack = ExitStack()
        stack.enter_context(live_coordinator(self.db_url, port=self.port, env=self.env))
        self._stack = stack

    def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            self._stop_fast()
            stack.close()

    def kill9(self) -> None:
        """SIGKILL our coordinator child at once: a crash, no goodbye to anyone."""
        if self._stack is not None:
            stack, self._stack = self._stack, None
            self._stop_fast(grace_s=0.0)
            stack.close()

    def _stop_fast(self, grace_s: float = 3.0) -> None:
        """SIGTERM our coordinator child, SIGKILL it after `grace_s`.

        The coordinator answers open lease long polls at once on SIGTERM and exits quickly;
        this bounds a stop at `grace_s` all the same (`live_coordinator` would wait 10 s), so
        an outage test's clock starts when the coordinator is really gone.
        """
        pid = _child_serving(self.port)
        if pid is None:
            return
        if grace_s > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _child_serving(port: int) -> int | None:
    """The pid of this test process's `coordinator_stub serve --port PORT` child."""
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and b"coordinator_stub" in cmdline and str(port).encode() in cmdline:
            return int(proc.name)
    return None


@pytest.fixture
def coordinator_env() -> dict[str, str]:
    return dict(COORDINATOR_ENV)


@pytest.fixture
def coordinator(tmp_path: Path, coordinator_env: dict[str, str]) -> Iterator[Coordinator]:
    c = Coordinator(tmp_path, coordinator_env)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def renter(coordinator: Coordinator) -> Iterator[Renter]:
    r = Renter(coordinator.url)
    try:
        r.credit("100")
        yield r
    finally:
        r.close()


@pytest.fixture
def make_agent(tmp_path: Path, coordinator: Coordinator) -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def make(
        name: str = "agent", *, coordinator_url: str | list[str] | None = None, **kwargs: Any
    ) -> Agent:
        url = coordinator.url if coordinator_url is None else coordinator_url
        agent = Agent(tmp_path / name, url, **kwargs)
        agents.append(agent)
        return agent

    try:
        yield make
    finally:
        for agent in agents:
            agent.stop()
