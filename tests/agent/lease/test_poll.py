"""The lease long poll against a coordinator whose lease version went backwards, and offer order."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from agent.config import LeasesSettings
from agent.lease.poll import LeasePoller
from agent.lease.reconcile import GpuView
from agent.lease.state import StateStore
from agent.lease.worker import LeaseWorker
from agent.link.backoff import Backoff
from agent.link.client import CoordinatorClient
from agent.link.wire import DesiredLease

END = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)
GPUS = {"GPU-0": GpuView(uuid="GPU-0", index=0, gpu_id="gpu_0", healthy=True)}


def lease(booking_id: str = "bk_1") -> DesiredLease:
    return DesiredLease(
        booking_id=booking_id,
        gpu_id="gpu_0",
        gpu_uuid="GPU-0",
        client_id="alice",
        start_time=END - timedelta(hours=1),
        end_time=END,
        generation=1,
        state="active",
    )


def make_worker(tmp_path: Path, client: CoordinatorClient | None = None) -> LeaseWorker:
    store = StateStore(tmp_path / "state")
    store.ensure_dir()
    return LeaseWorker(
        state=store.load(),
        store=store,
        lock=threading.RLock(),
        settings=LeasesSettings,
        client=lambda: client,
        gpus=lambda: GPUS,
    )


class ResetCoordinator:
    """A coordinator restored from a backup: its lease version is 1, whatever the agent saw.

    Like the real one it answers the long poll at once when `since` differs from its version,
    and otherwise holds it (here for at most `hold_s`, to keep the test short).
    """

    def __init__(self, version: int = 1, hold_s: float = 0.3) -> None:
        self.version = version
        self.hold_s = hold_s
        self.polls: list[int | None] = []
        self.acks: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ack"):
            self.acks.append(request.url.path.split("/")[-2])
            return httpx.Response(200, json={})
        since_text = request.url.params.get("since")
        since = None if since_text is None else int(since_text)
        self.polls.append(since)
        if since == self.version:
            time.sleep(min(self.hold_s, float(request.url.params["wait_s"])))
        return httpx.Response(
            200,
            json={
                "lease_version": self.version,
                "changed": since != self.version,
                "leases": [lease().model_dump(mode="json")],
            },
        )


def test_lease_version_going_back_is_adopted_without_a_tight_loop(tmp_path: Path) -> None:
    fake = ResetCoordinator(version=1)
    client = CoordinatorClient(
        "http://coordinator.test", api_key="k", transport=httpx.MockTransport(fake)
    )
    worker = make_worker(tmp_path, client)
    assert worker.offer(5, [])  # a heartbeat answered before the coordinator was restored
    registered, stop = threading.Event(), threading.Event()
    registered.set()
    poller = LeasePoller(
        worker=worker,
        client=lambda: client,
        registered=registered,
        stop=stop,
        backoff=Backoff(0.5, 2.0),
    )
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    # Before the fix: every answer (version 1) was dropped as older than 5 and the poll went
    # straight back with since=5 — hundreds of requests a second.
    assert len(fake.polls) <= 8, fake.polls
    assert fake.polls[0] == 5
    assert set(fake.polls[1:]) == {1}  # after the first answer it waits on the new version
    assert worker.lease_version == 1
    worker.step()  # and the coordinator's lease set was applied
    assert worker.counts() == (1, 0)
    assert fake.acks == ["bk_1"]
    client.close()


def test_poll_answer_older_than_its_since_is_a_reset_and_is_applied(tmp_path: Path) -> None:
    worker = make_worker(tmp_path)
    assert worker.offer(5, [])
    assert worker.offer(2, [lease()], since=5)
    assert worker.lease_version == 2
    worker.step()
    assert worker.counts() == (1, 1)  # started; ack owed (no client here)


def test_answer_that_crossed_a_newer_one_is_still_dropped(tmp_path: Path) -> None:
    worker = make_worker(tmp_path)
    assert worker.offer(7, [lease()])
    # Asked with since=5, answered 6 while a heartbeat brought 7: a race, not a reset.
    assert not worker.offer(6, [], since=5)
    assert not worker.offer(6, [])  # a heartbeat answer carries no `since`: never a reset
    assert worker.lease_version == 7
    worker.step()
    assert worker.counts()[0] == 1  # the older, empty set did not withdraw the lease


def test_reset_seen_while_a_heartbeat_moved_the_version_asks_afresh(tmp_path: Path) -> None:
    worker = make_worker(tmp_path)
    assert worker.offer(7, [])
    # Asked with since=5 but now holding 7: which answer came after the reset is unknown.
    assert not worker.offer(2, [], since=5)
    assert worker.lease_version is None  # the next poll asks with no `since`: the current set
    assert worker.offer(3, [lease()])
    assert worker.lease_version == 3
