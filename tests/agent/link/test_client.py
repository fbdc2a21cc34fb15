"""CoordinatorClient over httpx.MockTransport: wire shapes, error mapping, no key in errors."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError
from agent.link.client import CoordinatorClient
from agent.link.wire import GpuRegistration, HeartbeatRequest, MinerRegisterRequest

KEY = "sekrit-miner-key"


def client_for(handler: httpx.MockTransport | None = None, **kwargs: object) -> CoordinatorClient:
    return CoordinatorClient(
        "http://coordinator.test/",
        api_key=KEY,
        miner_id="host-01",
        timeout_s=2,
        transport=handler,
        **kwargs,  # type: ignore[arg-type]
    )


def test_register_gpu_sends_the_spec_shape_with_key_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"gpu_id": "gpu_1", "status": "registered", "x": 1})

    client = client_for(httpx.MockTransport(handler))
    gpu = GpuRegistration(
        name="NVIDIA H100 80GB HBM3",
        memory_gb=round(81559 / 1024),
        memory_mib=81559,
        uuid="GPU-0",
        compute_capability="9.0",
        driver_version="550.54",
        cuda_version="12.4",
        price_per_hour=Decimal("0.50"),
        region="eu-west",
    )
    answer = client.register_gpu(gpu)

    assert answer.gpu_id == "gpu_1"
    [request] = seen
    assert request.url.path == "/v1/marketplace/gpu/register"
    assert request.headers["X-Api-Key"] == KEY
    assert request.headers["X-Miner-ID"] == "host-01"
    assert json.loads(request.content) == {
        "gpu": {
            "name": "NVIDIA H100 80GB HBM3",
            "memory_gb": 80,
            "memory_mib": 81559,
            "uuid": "GPU-0",
            "compute_capability": "9.0",
            "driver_version": "550.54",
            "cuda_version": "12.4",
            "price_per_hour": "0.50",
            "region": "eu-west",
        }
    }


def test_heartbeat_parses_desired_leases_and_ignores_unknown_keys() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["status"] == "ONLINE"
        return httpx.Response(
            200,
            json={
                "status": "ok",
                "heartbeat_interval_s": 10,
                "lease_version": 7,
                "new_field": True,
                "leases": [
                    {
                        "booking_id": "bk_1",
                        "gpu_id": "gpu_1",
                        "gpu_uuid": "GPU-0",
                        "client_id": "alice",
                        "start_time": "2026-11-26T03:56:14.838070Z",
                        "end_time": "2026-11-26T04:56:14.838070Z",
                        "generation": 1,
                        "state": "active",
                        "extra": "ignored",
                    }
                ],
            },
        )

    answer = client_for(httpx.MockTransport(handler)).heartbeat(HeartbeatRequest())
    assert answer.lease_version == 7
    assert answer.leases is not None
    assert answer.leases[0].end_time.tzinfo is not None
    assert answer.leases[0].state == "active"


def test_long_poll_read_timeout_is_wait_plus_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"lease_version": 3, "leases": []})

    answer = client_for(httpx.MockTransport(handler)).leases(since=2, wait_s=25)
    assert answer.lease_version == 3
    [request] = seen
    assert request.url.params["since"] == "2"
    assert request.url.params["wait_s"] == "25"
    assert request.extensions["timeout"]["read"] == 27.0


def test_long_poll_wait_is_capped_at_thirty_seconds() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"lease_version": 0})

    client_for(httpx.MockTransport(handler)).leases(since=None, wait_s=600)
    assert seen[0].url.params["wait_s"] == "30"
    assert "since" not in seen[0].url.params


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(status: int) -> None:
    client = client_for(httpx.MockTransport(lambda r: httpx.Response(status, text="boom")))
    with pytest.raises(CoordinatorUnavailableError, match=str(status)):
        client.heartbeat(HeartbeatRequest())


@pytest.mark.parametrize(
    ("status", "detail"),
    [(401, "invalid key"), (404, "miner not registered"), (409, "stale lease generation 1")],
)
def test_4xx_is_rejected_with_status_and_detail(status: int, detail: str) -> None:
    client = client_for(
        httpx.MockTransport(lambda r: httpx.Response(status, json={"detail": detail}))
    )
    with pytest.raises(CoordinatorRejectedError) as info:
        client.ack("bk_1", generation=1, state="started")
    assert info.value.status_code == status
    assert info.value.detail == detail
    assert KEY not in str(info.value)


def test_transport_error_is_unavailable_and_never_shows_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(CoordinatorUnavailableError) as info:
        client_for(httpx.MockTransport(handler)).register_miner(MinerRegisterRequest())
    assert KEY not in str(info.value)
    assert "ConnectError" in str(info.value)


def test_timeout_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(CoordinatorUnavailableError, match="timed out"):
        client_for(httpx.MockTransport(handler)).heartbeat(HeartbeatRequest())


def test_malformed_answer_is_unavailable_not_a_crash() -> None:
    client = client_for(httpx.MockTransport(lambda r: httpx.Response(200, json={"x": 1})))
    with pytest.raises(CoordinatorUnavailableError, match="unexpected response"):
        client.register_miner(MinerRegisterRequest())


def test_deregister_uses_delete_on_the_miner() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"miner_id": "host-01"})

    client_for(httpx.MockTransport(handler)).deregister("host-01", timeout_s=1)
    assert seen[0].method == "DELETE"
    assert seen[0].url.path == "/v1/miners/host-01"


def test_real_refused_connection_is_unavailable() -> None:
    from tests.support import free_port

    client = CoordinatorClient(f"http://127.0.0.1:{free_port()}", api_key=KEY, timeout_s=1)
    try:
        with pytest.raises(CoordinatorUnavailableError):
            client.heartbeat(HeartbeatRequest())
        client.abort_long_poll()
        with pytest.raises(CoordinatorUnavailableError):
            client.leases(since=1, wait_s=0)
    finally:
        client.close()
