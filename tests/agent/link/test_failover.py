"""CoordinatorClient with several URLs: on a connection error or a 5xx it fails over to the
next at once (the request is not lost), stays there, and tries the first again later."""

from __future__ import annotations

import httpx
import pytest

from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError
from agent.link.client import CoordinatorClient
from agent.link.wire import HeartbeatRequest

A, B = "http://coordinator-a:8000", "http://coordinator-b:8000"


def fleet(down: set[str], seen: list[str], status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        origin = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        seen.append(origin)
        if origin in down:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, json={"status": "ok", "heartbeat_interval_s": 10})

    return httpx.MockTransport(handler)


def test_a_dead_coordinator_is_left_at_once_and_tried_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    down = {A}
    client = CoordinatorClient([A, B], api_key="k" * 32, transport=fleet(down, seen))
    client.heartbeat(HeartbeatRequest())
    assert seen == [A, B]  # the same heartbeat, answered by B
    assert client.base_url == B
    client.heartbeat(HeartbeatRequest())
    assert seen[2:] == [B]  # stays on B: no second try of A per request
    clock = [1000.0]
    monkeypatch.setattr("agent.link.client.time.monotonic", lambda: clock[0])
    client._failback_at = 1010.0  # as if it had failed over at 950
    clock[0] = 1011.0
    down.clear()  # A is back
    client.heartbeat(HeartbeatRequest())
    assert seen[3:] == [A]
    assert client.base_url == A
    client.close()


def test_5xx_fails_over_but_a_4xx_is_the_answer() -> None:
    seen: list[str] = []
    client = CoordinatorClient([A, B], api_key="k" * 32, transport=fleet(set(), seen, 503))
    with pytest.raises(CoordinatorUnavailableError, match="HTTP 503"):
        client.heartbeat(HeartbeatRequest())
    assert seen == [A, B]  # both tried once, then the caller's backoff takes over
    seen.clear()
    refusing = CoordinatorClient([A, B], api_key="k" * 32, transport=fleet(set(), seen, 401))
    with pytest.raises(CoordinatorRejectedError):
        refusing.heartbeat(HeartbeatRequest())
    assert seen == [A]  # a refusal is the coordinator's word: no failover
    client.close()
    refusing.close()


def test_one_url_behaves_as_before() -> None:
    seen: list[str] = []
    client = CoordinatorClient(A, api_key="k" * 32, transport=fleet({A}, seen))
    with pytest.raises(CoordinatorUnavailableError):
        client.heartbeat(HeartbeatRequest())
    assert seen == [A]
    client.close()
