"""Proof of hardware at the coordinator: challenge, positions after the fill, verdict on the
GPU object, the `verified` filter, and bookings an attestation refuses."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from aitbc_common import proof
from coordinator_stub.app import create_app
from coordinator_stub.config import CoordinatorSettings
from tests.coordinator.miner_support import book, credit, heartbeat, ok, online_gpu
from tests.support import (
    ADMIN_KEY,
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    FakeClock,
    auth,
)

GOOD_FIGURES = {"fp32_tflops": 60.0, "memory_tbps": 2.9}  # an H100 SXM5 at ~90 %


def challenge(client: TestClient, gpu_id: str, key: str = MINER_KEY) -> Any:
    return client.post(f"/v1/miners/gpus/{gpu_id}/attestations", headers=auth(key))


def attest(
    client: TestClient,
    gpu_id: str,
    *,
    honest: bool = True,
    figures: dict[str, float] | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The agent's three calls, answering from the seed (honest) or from another seed."""
    opened = ok(challenge(client, gpu_id), 201)
    seed = int(opened["seed"], 16)
    filled = ok(
        client.post(
            f"/v1/miners/attestations/{opened['attestation_id']}/filled", headers=auth(MINER_KEY)
        )
    )
    values = proof.expected(seed if honest else seed ^ 1, filled["positions"])
    body = {"values": [str(v) for v in values], **(figures or GOOD_FIGURES), "checks": checks or []}
    resp = client.post(
        f"/v1/miners/attestations/{opened['attestation_id']}/answer",
        json=body,
        headers=auth(MINER_KEY),
    )
    return ok(resp)


def gpu(client: TestClient, gpu_id: str) -> dict[str, Any]:
    return ok(client.get(f"/v1/marketplace/gpu/{gpu_id}"))


def listed(client: TestClient, **query: str) -> list[str]:
    return [g["id"] for g in ok(client.get("/v1/marketplace/gpu/list", params=query))]


def test_an_honest_answer_verifies_the_gpu(client: TestClient, clock: FakeClock) -> None:
    gpu_id = online_gpu(client)
    before = gpu(client, gpu_id)
    assert before["verified"] is False
    assert before["attestation"]["status"] == "none"
    opened = ok(challenge(client, gpu_id), 201)
    assert opened["words"] == 80 * 1024 * 2**20 * 9 // 10 // 8
    assert opened["seed"].startswith("0x")
    clock.advance(seconds=1)
    verdict = attest(client, gpu_id)
    assert verdict["verified"] is True
    assert verdict["status"] == "passed"
    assert {c["name"] for c in verdict["checks"]} == {
        "proof_of_memory",
        "fp32_throughput",
        "memory_bandwidth",
    }
    after = gpu(client, gpu_id)
    assert after["verified"] is True
    assert after["attestation"]["status"] == "passed"
    assert after["attestation"]["fp32_tflops"] == 60.0
    assert after["attestation"]["attested_at"] is not None
    assert listed(client, verified="true") == [gpu_id]
    assert listed(client, verified="false") == []
    history = ok(client.get(f"/v1/marketplace/gpu/{gpu_id}/attestations"))
    assert [h["status"] for h in history] == ["passed", "challenged"]  # the unanswered one stays


def test_wrong_words_fail_and_the_gpu_is_not_bookable(
    client: TestClient, settings: CoordinatorSettings, clock: FakeClock
) -> None:
    gpu_id = online_gpu(client)
    verdict = attest(client, gpu_id, honest=False)
    assert verdict["verified"] is False
    assert verdict["reason"].startswith("proof_of_memory: 64 words at positions drawn after")
    assert "64 wrong" in verdict["reason"]
    assert gpu(client, gpu_id)["attestation"]["status"] == "failed"
    assert listed(client, verified="false") == [gpu_id]
    credit(client)
    refused = client.post(
        f"/v1/marketplace/gpu/{gpu_id}/book", json={"duration_hours": 1}, headers=auth(CLIENT_KEY)
    )
    assert refused.status_code == 409
    assert "failed its attestation: proof_of_memory" in refused.json()["detail"]
    # With the rule off, the same GPU can be booked (on the same database).
    relaxed = settings.model_copy(update={"attestation_required": "off"})
    with TestClient(create_app(relaxed, clock=clock, run_sweeper=False)) as other:
        assert book(other, gpu_id)["status"] == "booked"


def test_slow_figures_and_failed_agent_checks_fail(client: TestClient) -> None:
    gpu_id = online_gpu(client)
    verdict = attest(client, gpu_id, figures={"fp32_tflops": 20.0, "memory_tbps": 2.9})
    assert verdict["reason"] == "fp32_throughput: 20 TFLOPS; the band is 33.5 to 87.1"
    verdict = attest(
        client,
        gpu_id,
        checks=[{"name": "pci_device_id", "ok": False, "reason": "0x2684 is a RTX 4090"}],
    )
    assert verdict["verified"] is False
    assert verdict["reason"] == "agent:pci_device_id: 0x2684 is a RTX 4090"


def test_the_protocol_keeps_its_order(client: TestClient, clock: FakeClock) -> None:
    gpu_id = online_gpu(client)
    opened = ok(challenge(client, gpu_id), 201)
    url = f"/v1/miners/attestations/{opened['attestation_id']}"
    early = client.post(
        f"{url}/answer", json={"values": [], **GOOD_FIGURES}, headers=auth(MINER_KEY)
    )
    assert early.status_code == 409
    assert "ask for the positions first" in early.json()["detail"]
    first = ok(client.post(f"{url}/filled", headers=auth(MINER_KEY)))["positions"]
    again = ok(client.post(f"{url}/filled", headers=auth(MINER_KEY)))["positions"]
    assert first == again  # asking twice gives no second draw to choose from
    stranger = client.post(f"{url}/filled", headers=auth(MINER2_KEY))
    assert stranger.status_code == 404
    clock.advance(seconds=301)
    late = client.post(
        f"{url}/answer",
        json={"values": ["0"] * len(first), **GOOD_FIGURES},
        headers=auth(MINER_KEY),
    )
    assert late.status_code == 409
    assert "expired" in late.json()["detail"]
    other_miners = challenge(client, gpu_id, key=MINER2_KEY)
    assert other_miners.status_code == 403


def test_an_open_challenge_or_a_booking_keeps_the_two_apart(client: TestClient) -> None:
    gpu_id = online_gpu(client)
    credit(client)
    ok(challenge(client, gpu_id), 201)
    during = client.post(
        f"/v1/marketplace/gpu/{gpu_id}/book", json={"duration_hours": 1}, headers=auth(CLIENT_KEY)
    )
    assert during.status_code == 409
    assert "is being attested" in during.json()["detail"]
    attest(client, gpu_id)  # answered: bookable again
    booking = book(client, gpu_id)
    refused = challenge(client, gpu_id)
    assert refused.status_code == 409
    assert booking["booking_id"] in refused.json()["detail"]


def test_an_admin_asks_and_the_heartbeat_says_so(client: TestClient) -> None:
    gpu_id = online_gpu(client)
    assert heartbeat(client)["attest_requested"] is False
    asked = client.post(f"/v1/admin/gpus/{gpu_id}/attest", headers=auth(ADMIN_KEY))
    assert asked.status_code == 202
    assert asked.json()["miner_id"] == "host-01"
    assert heartbeat(client)["attest_requested"] is True
    ok(challenge(client, gpu_id), 201)  # the agent started: the request is served
    assert heartbeat(client)["attest_requested"] is False
    assert (
        client.post(f"/v1/admin/gpus/{gpu_id}/attest", headers=auth(CLIENT_KEY)).status_code == 403
    )


@pytest.fixture
def strict_client(settings: CoordinatorSettings, clock: FakeClock) -> Any:
    strict = settings.model_copy(update={"attestation_required": "verified"})
    with TestClient(create_app(strict, clock=clock, run_sweeper=False)) as c:
        yield c


def test_verified_only_refuses_a_gpu_never_attested(strict_client: TestClient) -> None:
    gpu_id = online_gpu(strict_client)
    credit(strict_client)
    refused = strict_client.post(
        f"/v1/marketplace/gpu/{gpu_id}/book", json={"duration_hours": 1}, headers=auth(CLIENT_KEY)
    )
    assert refused.status_code == 409
    assert "not verified" in refused.json()["detail"]
    attest(strict_client, gpu_id)
    assert book(strict_client, gpu_id)["status"] == "booked"
