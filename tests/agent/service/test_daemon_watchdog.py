"""WATCHDOG=1 only while the heartbeat loop and the lease worker make progress."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agent.config import AgentSettings
from agent.lease.state import AgentState, StateStore
from agent.lease.worker import LeaseWorker
from agent.service.daemon import Daemon


def daemon(tmp_path: Path) -> Daemon:
    settings = AgentSettings(agent={"state_dir": tmp_path, "heartbeat_interval_s": 1})
    d = Daemon(settings)
    d.worker = LeaseWorker(
        state=AgentState(),
        store=StateStore(tmp_path),
        lock=threading.RLock(),
        settings=lambda: settings.leases,
        client=lambda: None,
        gpus=dict,
    )
    return d


def test_progress_when_both_loops_ticked_recently(tmp_path: Path) -> None:
    d = daemon(tmp_path)
    assert d._making_progress()


def test_no_progress_when_the_heartbeat_loop_is_stuck(tmp_path: Path) -> None:
    d = daemon(tmp_path)
    # budget: 2 intervals + 2 request timeouts + 2 s = 2 + 10 + 2
    d.heartbeat_tick_at = time.monotonic() - 15
    assert not d._making_progress()


def test_no_progress_when_the_lease_worker_is_stuck(tmp_path: Path) -> None:
    d = daemon(tmp_path)
    assert d.worker is not None
    d.worker.tick_at = time.monotonic() - 10
    assert not d._making_progress()


def test_a_hook_running_within_its_timeout_counts_as_progress(tmp_path: Path) -> None:
    d = daemon(tmp_path)
    assert d.worker is not None
    d.worker.tick_at = time.monotonic() - 30
    d.worker.busy_until = time.monotonic() + 30
    assert d._making_progress()
    d.worker.busy_until = time.monotonic() - 1  # the hook overran even its kill deadline
    assert not d._making_progress()
