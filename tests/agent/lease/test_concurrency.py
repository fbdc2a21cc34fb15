"""Each lease's hooks run beside the other leases': a slow on_start holds back nobody else.

The worker runs its real loop on a thread; the hook is a real process that logs when it begins
and ends (with the phase it finds in the state file) and waits while its gate file exists.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import LeasesSettings
from agent.lease.reconcile import GpuView
from agent.lease.state import StateStore
from agent.lease.worker import LeaseWorker
from agent.link.client import CoordinatorClient
from agent.link.wire import DesiredLease
from tests.support import wait_for

GPUS = {
    "GPU-0": GpuView(uuid="GPU-0", index=0, gpu_id="gpu_0", healthy=True),
    "GPU-1": GpuView(uuid="GPU-1", index=1, gpu_id="gpu_1", healthy=True),
}
FAR_END = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)

HOOK = """
import json, os, pathlib, sys, time
phase, here = sys.argv[1], pathlib.Path(sys.argv[2])
lease = os.environ["AITBC_LEASE_ID"]
recorded = json.loads((here / "state" / "state.json").read_text())["leases"][lease]["phase"]
def note(what):
    with open(here / "hooks.log", "a") as f:
        f.write(f"{phase} {what} {lease} {time.time()} {recorded}\\n")
note("begin")
gate = here / f"gate-{phase}-{lease}"
while gate.exists():
    time.sleep(0.01)
note("end")
"""


class Coordinator:
    """Accepts every ack and records it."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        booking_id = request.url.path.split("/")[-2]
        self.acks.append((booking_id, json.loads(request.content)))
        return httpx.Response(200, json={})

    def states(self, booking_id: str) -> list[str]:
        return [ack["state"] for b, ack in list(self.acks) if b == booking_id]


class Host:
    """A lease worker running its loop, with gated hooks and a recording coordinator."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        hook = tmp_path / "hook.py"
        hook.write_text(HOOK)
        self.hooks_log = tmp_path / "hooks.log"
        self.store = StateStore(tmp_path / "state")
        self.store.ensure_dir()
        self.coordinator = Coordinator()
        self.client = CoordinatorClient(
            "http://coordinator.test", api_key="k", transport=httpx.MockTransport(self.coordinator)
        )
        settings = LeasesSettings(
            on_start=[sys.executable, str(hook), "start", str(tmp_path)],
            on_end=[sys.executable, str(hook), "end", str(tmp_path)],
            hook_timeout_s=30,
        )
        self.worker = self.new_worker(settings)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)

    def new_worker(self, settings: LeasesSettings) -> LeaseWorker:
        return LeaseWorker(
            state=self.store.load(),
            store=self.store,
            lock=threading.RLock(),
            settings=lambda: settings,
            client=lambda: self.client,
            gpus=lambda: GPUS,
        )

    def hold(self, phase: str, booking_id: str) -> None:
        (self.dir / f"gate-{phase}-{booking_id}").touch()

    def release(self, phase: str, booking_id: str) -> None:
        (self.dir / f"gate-{phase}-{booking_id}").unlink()

    def runs(self, phase: str, which: str, booking_id: str) -> list[list[str]]:
        if not self.hooks_log.exists():
            return []
        rows = [line.split() for line in self.hooks_log.read_text().splitlines()]
        return [r for r in rows if r[:3] == [phase, which, booking_id]]

    def phase(self, booking_id: str) -> str:
        return self.store.load().leases[booking_id].phase


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    h.thread.start()
    yield h
    for gate in tmp_path.glob("gate-*"):  # let any held hook end
        gate.unlink()
    h.stop.set()
    h.thread.join(timeout=5)
    h.worker.step()  # wait for hook threads still running, so none outlives the test
    h.client.close()


def lease(
    booking_id: str,
    uuid: str,
    *,
    end_time: datetime = FAR_END,
    state: str = "active",
    generation: int = 1,
) -> DesiredLease:
    return DesiredLease(
        booking_id=booking_id,
        gpu_id="gpu_" + uuid[-1],
        gpu_uuid=uuid,
        client_id="alice",
        start_time=datetime.now(UTC),
        end_time=end_time,
        generation=generation,
        state=state,  # type: ignore[arg-type]
    )


def test_a_lease_starts_and_is_acked_while_another_leases_on_start_still_runs(
    host: Host,
) -> None:
    host.hold("start", "bk_a")
    a = lease("bk_a", "GPU-0")
    host.worker.offer(1, [a])
    wait_for("A's on_start running", lambda: host.runs("start", "begin", "bk_a"))

    host.worker.offer(2, [a, lease("bk_b", "GPU-1")])
    wait_for("B acked started", lambda: host.coordinator.states("bk_b") == ["started"])

    # A's hook is still held: B did not wait for it.
    assert host.runs("start", "begin", "bk_b")[0][-1] == "starting"
    assert host.runs("start", "end", "bk_b")
    assert not host.runs("start", "end", "bk_a")
    assert host.phase("bk_a") == "starting"
    assert host.phase("bk_b") == "started"
    assert host.coordinator.states("bk_a") == []

    host.release("start", "bk_a")
    wait_for("A acked started", lambda: host.coordinator.states("bk_a") == ["started"])
    assert host.phase("bk_a") == "started"
    assert len(host.runs("start", "begin", "bk_a")) == 1


def test_end_time_of_one_lease_is_kept_while_another_leases_on_start_runs(host: Host) -> None:
    host.hold("start", "bk_a")
    a = lease("bk_a", "GPU-0")
    host.worker.offer(1, [a])
    wait_for("A's on_start running", lambda: host.runs("start", "begin", "bk_a"))

    b_end = datetime.now(UTC) + timedelta(seconds=1.5)
    host.worker.offer(2, [a, lease("bk_b", "GPU-1", end_time=b_end)])
    wait_for("B acked started", lambda: host.coordinator.states("bk_b") == ["started"])
    wait_for("B's on_end", lambda: host.runs("end", "end", "bk_b"), timeout_s=5)
    wait_for("B acked stopped", lambda: host.coordinator.states("bk_b")[-1:] == ["stopped"])

    [begin] = host.runs("end", "begin", "bk_b")
    assert begin[-1] == "stopping"  # recorded before on_end ran
    assert float(begin[3]) >= b_end.timestamp()  # never earlier than end_time
    assert float(begin[3]) < b_end.timestamp() + 2.5  # and not held back by A's on_start
    assert not host.runs("start", "end", "bk_a")  # A's on_start is still running
    assert host.phase("bk_b") == "stopped"
    assert host.store.load().leases["bk_b"].detail == "expired"

    host.release("start", "bk_a")
    wait_for("A started", lambda: host.phase("bk_a") == "started")


def test_release_during_on_start_runs_on_end_once_after_on_start_ended(host: Host) -> None:
    host.hold("start", "bk_a")
    host.worker.offer(1, [lease("bk_a", "GPU-0")])
    wait_for("A's on_start running", lambda: host.runs("start", "begin", "bk_a"))

    host.worker.offer(2, [lease("bk_a", "GPU-0", state="ended", generation=2)])
    time.sleep(0.5)  # the worker has seen the release by now
    assert not host.runs("end", "begin", "bk_a")  # on_end waits for on_start
    assert host.phase("bk_a") == "starting"

    host.release("start", "bk_a")
    wait_for("A acked stopped", lambda: host.coordinator.states("bk_a")[-1:] == ["stopped"])
    rows = [line.split()[:2] for line in host.hooks_log.read_text().splitlines()]
    assert rows == [["start", "begin"], ["start", "end"], ["end", "begin"], ["end", "end"]]
    assert host.runs("end", "begin", "bk_a")[0][-1] == "stopping"
    stored = host.store.load().leases["bk_a"]
    assert stored.phase == "stopped"
    assert stored.detail == "released"
    assert host.coordinator.acks[-1] == (
        "bk_a",
        {"generation": 2, "state": "stopped", "detail": "released"},
    )

    time.sleep(0.3)  # more ticks, and the release seen again: still one on_end
    host.worker.offer(3, [lease("bk_a", "GPU-0", state="ended", generation=2)])
    time.sleep(0.3)
    assert len(host.runs("end", "begin", "bk_a")) == 1
    assert len(host.runs("start", "begin", "bk_a")) == 1


def test_stopping_does_not_wait_for_a_running_hook_and_a_restart_does_not_rerun_it(
    host: Host,
) -> None:
    host.hold("start", "bk_a")
    host.worker.offer(1, [lease("bk_a", "GPU-0")])
    wait_for("A's on_start running", lambda: host.runs("start", "begin", "bk_a"))

    stopped_at = time.monotonic()
    host.stop.set()
    host.worker.poke()
    host.thread.join(timeout=5)
    assert not host.thread.is_alive()
    assert time.monotonic() - stopped_at < 1.5  # SIGTERM's 5 s budget is not spent on hooks
    assert host.phase("bk_a") == "starting"

    # The agent restarts (the held hook is still running, as an orphan would be).
    restarted = host.new_worker(
        LeasesSettings(on_start=host.worker._settings().on_start, hook_timeout_s=30)
    )
    restarted.resume()
    restarted.offer(1, [lease("bk_a", "GPU-0")])
    restarted.step()
    assert restarted.counts() == (1, 0)  # resumed as started and acked
    assert "on_start not run again" in str(host.store.load().leases["bk_a"].detail)
    assert host.coordinator.states("bk_a") == ["started"]
    host.release("start", "bk_a")
    wait_for("the first on_start ended", lambda: host.runs("start", "end", "bk_a"))
    assert len(host.runs("start", "begin", "bk_a")) == 1
