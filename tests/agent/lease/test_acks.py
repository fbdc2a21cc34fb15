"""Acks: retried until accepted, but one refused ack never holds back the others."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from agent.config import LeasesSettings
from agent.lease.reconcile import GpuView
from agent.lease.state import StateStore
from agent.lease.worker import LeaseWorker
from agent.link.client import CoordinatorClient
from agent.link.wire import DesiredLease

END = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)
GPUS = {
    "GPU-0": GpuView(uuid="GPU-0", index=0, gpu_id="gpu_0", healthy=True),
    "GPU-1": GpuView(uuid="GPU-1", index=1, gpu_id="gpu_1", healthy=True),
}


def lease(booking_id: str, uuid: str) -> DesiredLease:
    return DesiredLease(
        booking_id=booking_id,
        gpu_id="gpu_" + uuid[-1],
        gpu_uuid=uuid,
        client_id="alice",
        start_time=END - timedelta(hours=1),
        end_time=END,
        generation=1,
        state="active",
    )


class PickyCoordinator:
    """Refuses every ack of the bookings in `refuse` with `status`, accepts the rest."""

    def __init__(self, refuse: set[str], status: int = 403) -> None:
        self.refuse = refuse
        self.status = status
        self.headers: dict[str, str] = {}
        self.tries: list[str] = []
        self.accepted: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        booking_id = request.url.path.split("/")[-2]
        json.loads(request.content)
        self.tries.append(booking_id)
        if booking_id in self.refuse:
            return httpx.Response(self.status, headers=self.headers, json={"detail": "not allowed"})
        self.accepted.append(booking_id)
        return httpx.Response(200, json={})


def make_worker(tmp_path: Path, fake: PickyCoordinator) -> tuple[LeaseWorker, StateStore]:
    store = StateStore(tmp_path / "state")
    store.ensure_dir()
    client = CoordinatorClient(
        "http://coordinator.test", api_key="k", transport=httpx.MockTransport(fake)
    )
    worker = LeaseWorker(
        state=store.load(),
        store=store,
        lock=threading.RLock(),
        settings=LeasesSettings,
        client=lambda: client,
        gpus=lambda: GPUS,
    )
    return worker, store


def test_a_refused_ack_does_not_block_the_other_leases_acks(tmp_path: Path) -> None:
    fake = PickyCoordinator(refuse={"bk_1"})
    worker, store = make_worker(tmp_path, fake)
    worker.offer(1, [lease("bk_1", "GPU-0"), lease("bk_2", "GPU-1")])
    worker.step()

    # bk_1 is first in line and refused; bk_2's ack still went out and was accepted.
    assert fake.tries == ["bk_1", "bk_2"]
    assert fake.accepted == ["bk_2"]
    assert store.load().leases["bk_2"].acked
    assert not store.load().leases["bk_1"].acked  # still owed: retried until accepted

    # The refused one waits on its own (long) schedule: not hammered every tick.
    worker.step()
    worker.step()
    assert fake.tries == ["bk_1", "bk_2"]
    assert worker.counts() == (2, 1)


def test_refused_ack_is_retried_at_once_when_the_coordinator_recovers(tmp_path: Path) -> None:
    fake = PickyCoordinator(refuse={"bk_1"}, status=401)
    worker, store = make_worker(tmp_path, fake)
    worker.offer(1, [lease("bk_1", "GPU-0")])
    worker.step()
    assert fake.accepted == []

    fake.refuse.clear()  # e.g. the operator reloaded a fixed key
    worker.coordinator_recovered()
    worker.step()
    assert fake.accepted == ["bk_1"]
    assert store.load().leases["bk_1"].acked


def test_throttled_ack_waits_for_retry_after_and_holds_back_all_acks(tmp_path: Path) -> None:
    fake = PickyCoordinator(refuse={"bk_1", "bk_2"}, status=429)
    worker, _ = make_worker(tmp_path, fake)
    fake.headers = {"Retry-After": "30"}
    worker.offer(1, [lease("bk_1", "GPU-0"), lease("bk_2", "GPU-1")])
    worker.step()
    worker.step()
    # Throttling is about the whole miner: one try, then everything waits the Retry-After.
    assert fake.tries == ["bk_1"]
    assert worker._next_ack_try - time.monotonic() > 25
