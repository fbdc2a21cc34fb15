"""Coordinator trouble: an outage is retried within seconds, a refusal (401/403) within minutes,
logged once and named in STATUS=; a 429 waits its Retry-After; a SIGHUP with a new key retries
at once. Also the RetrySchedule and Retry-After parsing on their own."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from agent.config import AgentSettings, load_settings
from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError
from agent.gpu import open_backend
from agent.lease.poll import LeasePoller
from agent.lease.worker import LeaseWorker
from agent.link.backoff import REFUSED_INITIAL_S, Backoff, RetrySchedule
from agent.link.client import CoordinatorClient
from agent.service.daemon import Daemon

OLD_KEY, NEW_KEY = "old-key", "new-key"


class KeyedCoordinator:
    """Accepts only `good_key`; answers 401 to anything else. `status` overrides (e.g. 429)."""

    def __init__(self, good_key: str = NEW_KEY) -> None:
        self.good_key = good_key
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if self.status is not None:
            return httpx.Response(self.status, headers=self.headers, json={"detail": "slow down"})
        if request.headers.get("X-Api-Key") != self.good_key:
            return httpx.Response(401, json={"detail": "invalid api key"})
        path = request.url.path
        if path == "/v1/miners/register":
            return httpx.Response(200, json={"miner_id": "host-01", "heartbeat_interval_s": 10})
        if path == "/v1/marketplace/gpu/register":
            uuid = json.loads(request.content)["gpu"]["uuid"]
            return httpx.Response(200, json={"gpu_id": "gpu-" + uuid[-1]})
        if path == "/v1/miners/heartbeat":
            return httpx.Response(200, json={"lease_version": 1, "leases": []})
        if path == "/v1/miners/leases":
            time.sleep(0.05)
            return httpx.Response(200, json={"lease_version": 1, "leases": []})
        return httpx.Response(404, json={"detail": "not found"})


def write_config(path: Path, state_dir: Path, key: str) -> None:
    path.write_text(
        f'[coordinator]\nurl = "http://coordinator.test"\napi_key = "{key}"\n'
        f'miner_id = "host-01"\n[agent]\nstate_dir = "{state_dir}"\n'
        '[gpu]\nbackend = "simulated"\n[[gpu.simulated]]\nmodel = "Sim"\nmemory_mib = 1024\n'
    )


@pytest.fixture
def fake() -> KeyedCoordinator:
    return KeyedCoordinator()


@pytest.fixture
def daemon(
    tmp_path: Path, fake: KeyedCoordinator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    config = tmp_path / "agent.toml"
    write_config(config, tmp_path / "state", OLD_KEY)
    settings = load_settings(config)
    d = Daemon(settings, config_path=config)
    transport = httpx.MockTransport(fake)

    def new_client(s: AgentSettings) -> CoordinatorClient:
        c = s.coordinator
        return CoordinatorClient(
            c.url, api_key=c.resolve_api_key(), miner_id=c.miner_id, transport=transport
        )

    monkeypatch.setattr(d, "_new_client", new_client)
    d.store.ensure_dir()
    d.client = new_client(settings)
    d.backend = open_backend(settings.gpu, settings.health)
    d.gpus = list(d.backend.gpus())
    d.worker = LeaseWorker(
        state=d.state,
        store=d.store,
        lock=d.lock,
        settings=lambda: d.settings.leases,
        client=d._client,
        gpus=d.gpu_views,
    )
    yield d
    d.backend.close()
    assert d.client is not None
    d.client.close()


def test_a_refused_key_backs_off_for_minutes_logged_once_and_named(daemon: Daemon) -> None:
    with capture_logs() as logs:
        daemon._heartbeat_tick()
        first_wait_s = daemon._hb_next_try - time.monotonic()
        daemon._hb_next_try = 0.0  # pretend the wait is over: refused again
        daemon._heartbeat_tick()
    # Before: the outage backoff, capped at 2..15 s, forever.
    assert first_wait_s >= REFUSED_INITIAL_S / 2 - 1
    assert daemon._hb_next_try - time.monotonic() >= REFUSED_INITIAL_S - 1  # and it grows
    assert [e["status_code"] for e in logs if e["event"] == "coordinator_rejected"] == [401]
    assert daemon._status_line(force=True).endswith(", coordinator rejects our key (401)")


def test_reload_with_a_new_key_retries_at_once(daemon: Daemon, tmp_path: Path) -> None:
    daemon._heartbeat_tick()
    assert daemon._hb_next_try > time.monotonic() + 10
    write_config(tmp_path / "agent.toml", tmp_path / "state", NEW_KEY)
    daemon._reload()
    assert daemon._hb_next_try == 0.0
    daemon._heartbeat_tick()
    assert daemon.registered_event.is_set()
    assert daemon.coordinator_state == "ok"


def test_reload_notices_a_rotated_key_behind_the_same_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(OLD_KEY)
    settings = AgentSettings(
        coordinator={"api_key_file": key_file}, agent={"state_dir": tmp_path / "state"}
    )
    client = CoordinatorClient("http://c.test", api_key=settings.coordinator.resolve_api_key())
    assert client.uses_api_key(OLD_KEY)
    key_file.write_text(NEW_KEY)
    assert not client.uses_api_key(settings.coordinator.resolve_api_key())
    client.close()


def test_429_waits_for_retry_after(daemon: Daemon, fake: KeyedCoordinator) -> None:
    fake.status, fake.headers = 429, {"Retry-After": "42"}
    daemon._heartbeat_tick()
    assert 40 < daemon._hb_next_try - time.monotonic() <= 42
    assert daemon.coordinator_state == "throttling us (429)"


def test_long_poll_refused_waits_minutes_and_a_kick_retries_it(fake: KeyedCoordinator) -> None:
    client = CoordinatorClient(
        "http://coordinator.test", api_key=OLD_KEY, transport=httpx.MockTransport(fake)
    )

    class Worker:
        lease_version: int | None = 1

        def offer(self, *args: Any, **kwargs: Any) -> bool:
            return True

    registered, stop = threading.Event(), threading.Event()
    registered.set()
    poller = LeasePoller(
        worker=Worker(),  # type: ignore[arg-type]
        client=lambda: client,
        registered=registered,
        stop=stop,
        backoff=Backoff(0.5, 2.0),
    )
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)
        # Before: the outage backoff (≤ 2 s here) — three or four tries in 1.5 s, forever.
        assert fake.calls == ["/v1/miners/leases"]
        fake.good_key = OLD_KEY  # the operator fixed it; a reload kicks the poller
        poller.retry_now()
        time.sleep(0.5)
        assert len(fake.calls) >= 2
    finally:
        stop.set()
        thread.join(timeout=5)
        client.close()
    assert not thread.is_alive()


def test_retry_schedule_by_kind() -> None:
    schedule = RetrySchedule(Backoff(0.5, 2.0, rng=lambda: 1.0), Backoff(60, 600, rng=lambda: 1.0))
    down = CoordinatorUnavailableError("down")
    refused = CoordinatorRejectedError("no", status_code=403)
    assert schedule.failure(down).delay_s == 0.5
    first = schedule.failure(refused)
    assert (first.delay_s, first.first) == (60, True)
    again = schedule.failure(refused)
    assert (again.delay_s, again.first) == (120, False)
    assert schedule.failure(CoordinatorRejectedError("x", status_code=409)).delay_s <= 2.0
    throttled = CoordinatorRejectedError("slow", status_code=429, retry_after_s=5000)
    assert schedule.failure(throttled).delay_s == 600  # capped
    schedule.success()
    after = schedule.failure(refused)
    assert (after.delay_s, after.first) == (60, True)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("7", 7, 7),
        ("<an HTTP date 30 s from now>", 25, 31),  # made when the test runs, not when collected
        ("soon", None, None),
    ],
)
def test_retry_after_header_is_parsed(header: str, low: float | None, high: float | None) -> None:
    if header.startswith("<an HTTP date"):
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": header})

    client = CoordinatorClient("http://c.test", api_key="k", transport=httpx.MockTransport(handler))
    with pytest.raises(CoordinatorRejectedError) as caught:
        client.deregister("host-01")
    client.close()
    got = caught.value.retry_after_s
    if low is None:
        assert got is None
    else:
        assert got is not None
        assert low <= got <= (high or 0)
