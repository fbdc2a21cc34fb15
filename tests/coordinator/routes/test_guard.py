"""The request guard and the input bounds: what a hostile caller could send release 0.1.0.

Each test pins one finding of the adversarial review: oversized bodies read before the key was
checked, megabytes stored in a miner row, lone surrogates turning into 500s, 422s that echoed a
200 kB input whole.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.coordinator.market_support import assert_money_conserved, credit, online, register
from tests.support import ADMIN_KEY, CLIENT_KEY, MINER_KEY, auth, live_coordinator

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("guard") / "coordinator.db"
    with live_coordinator(f"sqlite:///{path}") as url:
        yield url


def raw_request(base: str, head: bytes, body: bytes = b"", timeout_s: float = 5) -> bytes:
    """Send bytes on a fresh connection; the server's first answer, whole: its head and as
    much body as its Content-Length says (the two may arrive in separate TCP segments)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(head + body)
        answer = sock.recv(65536)
        while b"\r\n\r\n" in answer or not answer:
            head_part, _, got = answer.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head_part)
            if length is None or len(got) >= int(length.group(1)):
                break
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        return answer


def test_an_anonymous_300_mb_body_is_413_from_its_content_length_before_a_byte_is_read(
    live: str,
) -> None:
    started = time.monotonic()
    answer = raw_request(
        live,
        b"POST /v1/marketplace/gpu/register HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than 1048576 bytes" in answer
    assert time.monotonic() - started < 2  # not 26 s of reading first
    assert httpx.get(f"{live}/health", timeout=2).status_code == 200


def test_a_streamed_body_is_cut_off_at_the_limit(live: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB in all, without a Content-Length
            yield b" " * (64 * 1024)

    resp = httpx.post(
        f"{live}/v1/miners/heartbeat",
        content=chunks(),
        headers={**auth(MINER_KEY), "Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 413


def test_a_miner_cannot_send_a_100_mb_heartbeat(client: TestClient) -> None:
    online(client)
    body = json.dumps({"metadata": {"junk": "x" * (2 * MIB)}})
    resp = client.post(
        "/v1/miners/heartbeat",
        content=body,
        headers={**auth(MINER_KEY), "Content-Type": "application/json"},
    )
    assert resp.status_code == 413


@pytest.mark.parametrize(
    ("path", "body", "what"),
    [
        ("/v1/miners/register", {"capabilities": {"blob": "x" * 100_000}}, "bytes"),
        ("/v1/miners/register", {"capabilities": {"a": [[[[[[[1]]]]]]]}}, "deeper"),
        ("/v1/miners/register", {"capabilities": {str(i): i for i in range(600)}}, "entries"),
        ("/v1/miners/heartbeat", {"metadata": {"blob": "x" * 10_000}}, "bytes"),
        ("/v1/miners/heartbeat", {"metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "deeper"),
    ],
)
def test_capabilities_and_metadata_are_bounded(
    client: TestClient, path: str, body: dict[str, Any], what: str
) -> None:
    online(client)
    resp = client.post(path, json=body, headers=auth(MINER_KEY))
    assert resp.status_code == 422, resp.text
    assert what in resp.text
    assert len(resp.content) < 2000  # and the input is not echoed back whole


def test_an_agents_real_capabilities_still_fit(client: TestClient) -> None:
    gpus = [
        {
            "index": i // 7,
            "uuid": f"MIG-{i:036d}",
            "name": "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
            "memory_mib": 9856,
            "compute_capability": "9.0",
            "parent_uuid": f"GPU-{i // 7:036d}",
            "mig_profile": "1g.10gb",
        }
        for i in range(56)  # 8 GPUs x 7 MIG instances: the most a host has
    ]
    body = {"capabilities": {"gpus": gpus, "driver_version": "550.54.15"}, "concurrency": 56}
    assert client.post("/v1/miners/register", json=body, headers=auth(MINER_KEY)).status_code == 200


def test_a_422_echoes_only_a_short_prefix_of_the_input(client: TestClient) -> None:
    resp = client.post(
        "/v1/marketplace/gpu/register",
        json={
            "gpu": {"name": "n", "memory_gb": 1, "price_per_hour": 1, "description": "d" * 200_000}
        },
        headers=auth(MINER_KEY),
    )
    assert resp.status_code == 422
    assert len(resp.content) < 1000
    (error,) = resp.json()["detail"]
    assert error["loc"] == ["body", "gpu", "description"]
    assert error["input"] == "d" * 64 + "…"


LONE = "\\ud800"  # JSON text of a lone high surrogate
GPU = '"memory_gb": 1, "price_per_hour": 1'
SURROGATE_BODIES = [
    ("/v1/marketplace/gpu/register", MINER_KEY, '{"gpu": {"name": "%s", ' + GPU + "}}"),
    (
        "/v1/marketplace/gpu/register",
        MINER_KEY,
        '{"gpu": {"name": "n", "region": "%s", ' + GPU + "}}",
    ),
    ("/v1/miners/register", MINER_KEY, '{"region": "%s"}'),
    ("/v1/admin/accounts/alice/credit", ADMIN_KEY, '{"amount": "1%s"}'),
    ("/v1/admin/api-keys", ADMIN_KEY, '{"role": "client", "subject": "x%s"}'),
    ("/v1/stake", CLIENT_KEY, '{"miner_id": "host-01%s", "amount": "100"}'),
    (
        "/v1/marketplace/bids",
        CLIENT_KEY,
        '{"provider": "p", "capacity": 1, "price": 1, "notes": "%s"}',
    ),
    (
        "/v1/miners/leases/bk_0000000000000000/ack",
        MINER_KEY,
        '{"generation": 1, "state": "started", "detail": "%s"}',
    ),
    ("/v1/miners/heartbeat", MINER_KEY, '{"status": "%s"}'),
    ("/v1/miners/heartbeat", MINER_KEY, '{"metadata": {"%s": 1}}'),
]


@pytest.mark.parametrize(("path", "key", "template"), SURROGATE_BODIES)
@pytest.mark.parametrize("bad", [LONE, "\\udfff", "\\u0000", "ok\\udc80tail"])
def test_a_lone_surrogate_or_nul_in_any_string_is_a_422(
    client: TestClient, path: str, key: str, template: str, bad: str
) -> None:
    online(client)
    credit(client, "alice", "1000")
    resp = client.post(
        path,
        content=(template % bad).encode(),
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert resp.status_code == 422, resp.text
    assert "lone surrogate or a NUL" in resp.json()["detail"]
    assert_money_conserved(client.app)


def test_a_paired_surrogate_is_an_ordinary_character(client: TestClient) -> None:
    resp = client.post(
        "/v1/marketplace/gpu/register",
        content=b'{"gpu": {"name": "fast \\ud83d\\ude80", "memory_gb": 1, "price_per_hour": 1}}',
        headers={**auth(MINER_KEY), "Content-Type": "application/json"},
    )
    assert resp.status_code == 201, resp.text
    listed = client.get("/v1/marketplace/gpu/list").json()
    assert listed[0]["model"] == "fast \U0001f680"


def test_a_nul_in_the_query_string_is_a_422(client: TestClient) -> None:
    for url in ("/v1/marketplace/gpu/list?model=a%00b", "/v1/marketplace/offers?region=%00"):
        resp = client.get(url)
        assert resp.status_code == 422, url


# A fuzz alphabet that includes what browsers never send: lone surrogates and NUL, as JSON
# escapes, next to ordinary text.
_ESCAPES = st.sampled_from(
    ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\u0000", "\\ud83d\\ude80"]
)
_TEXT = st.lists(st.one_of(_ESCAPES, st.text(alphabet='ab\\"é ', max_size=3)), max_size=6).map(
    "".join
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(SURROGATE_BODIES), _TEXT)
def test_fuzzed_text_with_surrogates_and_nul_never_makes_a_500(
    client: TestClient, case: tuple[str, str, str], text: str
) -> None:
    path, key, template = case
    resp = client.post(
        path,
        content=(template % text).encode(),
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert resp.status_code < 500, resp.text


def test_the_guard_replays_the_body_unchanged_for_every_ordinary_request(
    client: TestClient,
) -> None:
    gpu = register(client, name='quote " and \\ backslash é')
    online(client)
    body = client.get(f"/v1/marketplace/gpu/{gpu}").json()
    assert body["model"] == 'quote " and \\ backslash é'


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A coordinator with 1 s header and body deadlines (10 s and 30 s by default)."""
    path: Path = tmp_path_factory.mktemp("impatient") / "coordinator.db"
    env = {"COORDINATOR_HEADER_TIMEOUT_S": "1", "COORDINATOR_BODY_TIMEOUT_S": "1"}
    with live_coordinator(f"sqlite:///{path}", env=env) as url:
        yield url


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes | None) -> float | None:
    """Seconds until the server closed `sock` (None if it did not within `seconds`), sending
    `trickle` every 0.2 s meanwhile."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
        if trickle is not None:
            try:
                sock.sendall(trickle)
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - started
    return None


def test_a_client_that_trickles_its_headers_is_cut_off(impatient: str) -> None:
    host, port = impatient.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port))) for _ in range(50)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        # One header line every 0.2 s, never the blank line that ends them: closed at ~1 s.
        closed = [_closed_within(sock, 4, b"X-Slow: 1\r\n") for sock in sockets[:5]]
        assert all(c is not None and c < 3 for c in closed), closed
        silent = [_closed_within(sock, 3, None) for sock in sockets[5:]]
        assert all(c is not None for c in silent)  # every held descriptor is given back
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(f"{impatient}/health", timeout=2).status_code == 200


def test_headers_in_time_are_served_and_keep_alive_still_works(impatient: str) -> None:
    with httpx.Client(base_url=impatient, timeout=5) as http:
        for _ in range(3):
            assert http.get("/health").status_code == 200
            time.sleep(0.5)  # idle between requests is keep-alive's business, not this deadline


def test_a_body_that_does_not_arrive_in_time_is_a_408(impatient: str) -> None:
    answer = raw_request(
        impatient,
        b"POST /v1/miners/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\nX-Api-Key: " + MINER_KEY.encode() + b"\r\n\r\n",
        b'{"inflight"',
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
