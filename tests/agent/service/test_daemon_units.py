"""The daemon's registration and heartbeat of rentable units, over NvmlBackend on a fake pynvml
and a fake coordinator (httpx.MockTransport): MIG instances, GPUs that appear after start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import AgentSettings
from agent.gpu.nvml import NvmlBackend
from agent.lease.state import StateStore
from agent.lease.worker import LeaseWorker
from agent.link.client import CoordinatorClient
from agent.service.daemon import Daemon
from tests.agent.gpu.fake_pynvml import FakeGpu, FakeMig, FakeNvml

A100 = "NVIDIA A100-SXM4-80GB"


class FakeCoordinator:
    """Just enough of §3.2 / §3.11: GPU ids idempotent by uuid, heartbeats recorded."""

    def __init__(self) -> None:
        self.gpus: dict[str, dict[str, Any]] = {}  # uuid → registered body
        self.ids: dict[str, str] = {}
        self.heartbeats: list[dict[str, Any]] = []
        self.lease_version = 1

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        path = request.url.path
        if path == "/v1/miners/register":
            return httpx.Response(200, json={"miner_id": "host-01", "heartbeat_interval_s": 10})
        if path == "/v1/marketplace/gpu/register":
            gpu = body["gpu"]
            created = gpu["uuid"] not in self.ids
            gpu_id = self.ids.setdefault(gpu["uuid"], f"gpu-{len(self.ids) + 1}")
            self.gpus[gpu["uuid"]] = gpu
            return httpx.Response(201 if created else 200, json={"gpu_id": gpu_id})
        if path == "/v1/miners/heartbeat":
            self.heartbeats.append(body)
            return httpx.Response(200, json={"lease_version": self.lease_version, "leases": []})
        return httpx.Response(404, json={"detail": "not found"})

    def reported(self) -> list[tuple[str, str]]:
        """(uuid, health) of each GPU in the latest heartbeat."""
        return [(g["uuid"], g["health"]) for g in self.heartbeats[-1]["gpus"]]


@pytest.fixture
def coordinator() -> FakeCoordinator:
    return FakeCoordinator()


@pytest.fixture
def make_daemon(tmp_path: Path, coordinator: FakeCoordinator) -> Iterator[Any]:
    made: list[Daemon] = []

    def make(fake: FakeNvml, **gpu: Any) -> Daemon:
        settings = AgentSettings(
            agent={"state_dir": tmp_path / "state"},
            coordinator={"miner_id": "host-01"},
            gpu=gpu,
        )
        d = Daemon(settings)
        d.store.ensure_dir()
        backend = NvmlBackend(nvml=fake)
        backend.open()
        d.backend = backend
        d.client = CoordinatorClient(
            "http://coordinator.test",
            api_key="k",
            miner_id="host-01",
            transport=httpx.MockTransport(coordinator.handle),
        )
        d.worker = LeaseWorker(
            state=d.state,
            store=d.store,
            lock=d.lock,
            settings=lambda: settings.leases,
            client=d._client,
            gpus=d.gpu_views,
        )
        d.gpus = list(backend.gpus())  # what run() does before its first sample
        d._sample()
        made.append(d)
        return d

    yield make
    for d in made:
        assert d.backend is not None
        assert d.client is not None
        d.backend.close()
        d.client.close()


def mig_gpu(uuid: str) -> FakeGpu:
    return FakeGpu(
        uuid=uuid,
        name=A100,
        memory_total_mib=81920,
        compute_capability=(8, 0),
        mig_mode=1,
        migs=[
            FakeMig("MIG-aaaa", f"{A100} MIG 3g.40gb", 40192, gpu_instance_id=1),
            FakeMig("MIG-bbbb", f"{A100} MIG 1g.10gb", 9856, gpu_instance_id=2),
        ],
    )


def test_a_mig_gpu_registers_and_heartbeats_its_instances_not_itself(
    make_daemon: Any, coordinator: FakeCoordinator
) -> None:
    d = make_daemon(FakeNvml([FakeGpu(uuid="GPU-plain"), mig_gpu("GPU-parent")]))
    d._heartbeat_tick()
    assert sorted(coordinator.gpus) == ["GPU-plain", "MIG-aaaa", "MIG-bbbb"]
    mig = coordinator.gpus["MIG-aaaa"]
    assert (mig["name"], mig["memory_mib"], mig["compute_capability"]) == (
        f"{A100} MIG 3g.40gb",
        40192,
        "8.0",
    )
    assert coordinator.reported() == [
        ("GPU-plain", "ok"),
        ("MIG-aaaa", "ok"),
        ("MIG-bbbb", "ok"),
    ]
    instance = coordinator.heartbeats[-1]["gpus"][1]
    assert instance["utilization_pct"] is None  # the parent's load is not the instance's
    assert d.state.gpu_ids == {
        "GPU-plain": coordinator.ids["GPU-plain"],
        "MIG-aaaa": coordinator.ids["MIG-aaaa"],
        "MIG-bbbb": coordinator.ids["MIG-bbbb"],
    }
    saved = StateStore(d.store.state_dir).load()
    assert saved.gpu_ids == d.state.gpu_ids
    # Leases find a MIG unit by its own uuid, with its parent's NVML index for the hooks.
    view = d.gpu_views()["MIG-bbbb"]
    assert (view.index, view.gpu_id, view.healthy) == (1, coordinator.ids["MIG-bbbb"], True)
    assert "GPU-parent" not in d.gpu_views()


def test_mig_units_follow_their_parents_health(
    make_daemon: Any, coordinator: FakeCoordinator
) -> None:
    fake = FakeNvml([mig_gpu("GPU-parent")])
    d = make_daemon(fake)
    d._heartbeat_tick()
    fake.gpus[0].lost = True
    d._heartbeat_tick()
    assert coordinator.reported() == [("MIG-aaaa", "lost"), ("MIG-bbbb", "lost")]
    assert not d.gpu_views()["MIG-aaaa"].healthy


def test_an_excluded_mig_uuid_is_not_offered(
    make_daemon: Any, coordinator: FakeCoordinator
) -> None:
    d = make_daemon(FakeNvml([mig_gpu("GPU-parent")]), exclude=["MIG-aaaa"])
    d._heartbeat_tick()
    assert sorted(coordinator.gpus) == ["MIG-bbbb"]


def test_a_gpu_lost_at_start_is_registered_once_it_is_back(
    make_daemon: Any, coordinator: FakeCoordinator
) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b", lost=True)])
    d = make_daemon(fake)
    d._heartbeat_tick()
    assert sorted(coordinator.gpus) == ["GPU-a"]  # GPU-b's uuid is not known yet
    registrations = len(coordinator.ids)

    fake.gpus[1].lost = False  # the backend re-acquires it by index on the next sample
    d._heartbeat_tick()
    assert sorted(coordinator.gpus) == ["GPU-a", "GPU-b"]
    assert [uuid for uuid, _ in coordinator.reported()] == ["GPU-a", "GPU-b"]
    gpu_b = coordinator.ids["GPU-b"]
    assert d.state.gpu_ids["GPU-b"] == gpu_b
    assert StateStore(d.store.state_dir).load().gpu_ids["GPU-b"] == gpu_b
    assert d.gpu_views()["GPU-b"].gpu_id == gpu_b

    d._heartbeat_tick()  # registered once: later ticks only heartbeat it
    assert len(coordinator.ids) == registrations + 1
    assert len(coordinator.heartbeats) == 3


def test_a_gpu_lost_at_start_with_mig_instances_offers_them_once_back(
    make_daemon: Any, coordinator: FakeCoordinator
) -> None:
    parent = mig_gpu("GPU-parent")
    parent.lost = True
    fake = FakeNvml([parent])
    d = make_daemon(fake)
    d._heartbeat_tick()
    assert coordinator.gpus == {}
    parent.lost = False
    d._heartbeat_tick()
    assert sorted(coordinator.gpus) == ["MIG-aaaa", "MIG-bbbb"]
    assert d.gpu_views()["MIG-aaaa"].index == 0


def test_a_heartbeat_that_reports_a_lower_lease_version_resets_the_workers_version(
    make_daemon: Any, coordinator: FakeCoordinator
) -> None:
    """The coordinator's database was restored: its lease version went back. The heartbeat's
    answer is then the truth, not a stale answer to drop."""
    d = make_daemon(FakeNvml([FakeGpu(uuid="GPU-a")]))
    coordinator.lease_version = 5
    d._heartbeat_tick()
    assert d.worker.lease_version == 5
    coordinator.lease_version = 1
    d._heartbeat_tick()
    assert d.worker.lease_version == 1
