"""Prometheus `/metrics`: per-route request counts and latency, and gauges read at scrape time."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from coordinator_stub import __version__
from coordinator_stub.app import create_app
from coordinator_stub.config import CoordinatorSettings
from tests.coordinator.market_support import credit, new_booking, online, register
from tests.support import CLIENT_KEY, MINER2_KEY, MINER_KEY, FakeClock, auth


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str
) -> float:
    key = ("aitbc_coordinator_http_requests_total", tuple(sorted(labels.items())))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    for stake_id in ("st_0000000000000001", "st_0000000000000002"):
        assert client.get(f"/v1/stake/{stake_id}", headers=auth(CLIENT_KEY)).status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.get("/health").status_code == 200
    samples = scrape(client)
    assert requests_total(samples, method="GET", route="/v1/stake/{stake_id}", status="404") == 2
    assert requests_total(samples, method="GET", route="<unmatched>", status="404") == 1
    assert requests_total(samples, method="GET", route="/health", status="200") == 1
    count = (
        "aitbc_coordinator_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/v1/stake/{stake_id}")),
    )
    assert samples[count] == 2
    assert not any("st_0000000000000001" in str(labels) for _, labels in samples)


def test_gauges_show_gpus_by_status_active_bookings_and_heartbeat_age(
    client: TestClient, clock: FakeClock
) -> None:
    gpus = [
        register(client, miner_key=MINER_KEY, name="RTX 4090", price="1.00000000") for _ in range(3)
    ]
    register(
        client, miner_key=MINER2_KEY, name="RTX 4090", price="1.00000000"
    )  # host-02 never heartbeats: offline
    online(client, MINER_KEY)
    credit(client, "alice", "100")
    new_booking(client, gpus[0], CLIENT_KEY, hours=1)
    clock.advance(seconds=7.5)
    samples = scrape(client)
    assert samples[("aitbc_coordinator_gpus", (("status", "available"),))] == 2
    assert samples[("aitbc_coordinator_gpus", (("status", "booked"),))] == 1
    assert samples[("aitbc_coordinator_gpus", (("status", "offline"),))] == 1
    assert samples[("aitbc_coordinator_bookings_active", ())] == 1
    assert (
        samples[("aitbc_coordinator_miner_heartbeat_age_seconds", (("miner_id", "host-01"),))]
        == 7.5
    )
    assert (
        "aitbc_coordinator_miner_heartbeat_age_seconds",
        (("miner_id", "host-02"),),
    ) not in samples
    assert samples[("aitbc_coordinator_miners", (("state", "online"),))] == 1
    assert samples[("aitbc_coordinator_miners", (("state", "offline"),))] == 1
    clock.advance(hours=2)  # the booking is over at its end_time, before any sweep
    samples = scrape(client)
    assert samples[("aitbc_coordinator_miners", (("state", "online"),))] == 0
    assert samples[("aitbc_coordinator_bookings_active", ())] == 0
    assert samples[("aitbc_coordinator_gpus", (("status", "offline"),))] == 4


def test_each_app_has_its_own_registry(settings: CoordinatorSettings, clock: FakeClock) -> None:
    # Two apps in one process: the global registry would raise on duplicate series.
    first = create_app(settings, clock=clock, run_sweeper=False)
    second = create_app(settings, clock=clock, run_sweeper=False)
    with TestClient(first) as a, TestClient(second) as b:
        for _ in range(3):
            a.get("/health/live")
        assert requests_total(scrape(a), method="GET", route="/health/live", status="200") == 3
        assert requests_total(scrape(b), method="GET", route="/health/live", status="200") == 0


def test_info_and_event_counts(client: TestClient) -> None:
    before = scrape(client)
    gpu = register(client, miner_key=MINER_KEY, name="RTX 4090", price="1.00000000")
    online(client, MINER_KEY)
    credit(client, "alice", "100")
    new_booking(client, gpu, CLIENT_KEY, hours=1)
    assert client.get("/v1/stake/st_0000000000000001", headers=auth("x" * 40)).status_code == 401
    after = scrape(client)
    info = [labels for name, labels in after if name == "aitbc_coordinator_info"]
    assert info == [
        (
            ("database", "sqlite" if "sqlite" in str(client.app.state.db.url) else "postgresql"),
            ("version", __version__),
        )
    ]  # type: ignore[attr-defined]

    def grew(event: str) -> float:
        key = ("aitbc_coordinator_events_total", (("event", event),))
        return after[key] - before[key]

    assert grew("booking_created") == 1
    assert grew("api_key_refused") == 1
    assert grew("miner_registered") == 1
    assert grew("booking_ended") == 0
