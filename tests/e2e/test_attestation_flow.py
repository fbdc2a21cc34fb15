"""The running agent proves its GPUs to a live coordinator: the honest card is verified
within seconds of registering, the cheat is caught and cannot be booked, and an admin's
request makes the agent attest again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Coordinator
from tests.e2e.harness import Agent, Renter, wait_for
from tests.fake_cuda.fakelib import FakeCuda, honest_h100
from tests.fake_nvml.fakelib import FakeNvmlConfig, build, document, gpu
from tests.support import ADMIN_KEY, auth

GPU_TOML = '[gpu]\nbackend = "nvml"\nprice_per_hour = "0.50"\n'


def fake_host(tmp_path: Path, cuda: FakeCuda) -> dict[str, str]:
    """The environment of an agent on 2 fake H100s whose CUDA side is `cuda`."""
    doc = document(0)
    doc["gpus"] = [gpu(i, uuid=honest_h100(i)["UUID"]) for i in range(2)]
    nvml = FakeNvmlConfig(tmp_path / "fake-nvml.json", doc)
    env = nvml.env(build(), base={})
    fake = cuda.env()
    env["LD_LIBRARY_PATH"] = f"{fake.pop('LD_LIBRARY_PATH')}:{env['LD_LIBRARY_PATH']}"
    return {**env, **fake}


def attestation_of(renter: Renter, uuid: str) -> dict[str, Any] | None:
    for g in renter.gpus():
        if g["uuid"] == uuid and g["attestation"]["status"] != "none":
            return g
    return None


def test_the_agent_attests_its_gpus_and_a_cheat_is_caught(
    tmp_path: Path,
    coordinator: Coordinator,
    renter: Renter,
    make_agent: Callable[..., Agent],
) -> None:
    honest, replaying = honest_h100(0), {**honest_h100(1), "REPLAY_SEED": "0x42"}
    env = fake_host(tmp_path, FakeCuda([honest, replaying]))
    agent = make_agent(gpu_toml=GPU_TOML, env=env).start()

    good = wait_for("GPU 0 attested", lambda: attestation_of(renter, honest["UUID"]))
    bad = wait_for("GPU 1 attested", lambda: attestation_of(renter, replaying["UUID"]))
    assert good["verified"] is True
    assert good["attestation"]["fp32_tflops"] > 0
    assert bad["verified"] is False
    assert bad["attestation"]["reason"].startswith("proof_of_memory: 64 words")
    [ok_line, bad_line] = sorted(agent.events("gpu_attested"), key=lambda e: e["index"])
    assert ok_line["verified"] is True
    assert bad_line["verified"] is False

    renter.credit()
    refused = renter.book(bad["id"], duration_s=600)
    assert refused.status_code == 409
    assert "failed its attestation" in refused.json()["detail"]
    assert renter.book(good["id"], duration_s=600).status_code == 201

    # An admin asks: the agent attests again (the booked GPU is left alone).
    before = len(agent.events("gpu_attested"))
    asked = httpx.post(
        f"{coordinator.url}/v1/admin/gpus/{bad['id']}/attest", headers=auth(ADMIN_KEY), timeout=5
    )
    assert asked.status_code == 202
    wait_for("a second attestation", lambda: len(agent.events("gpu_attested")) > before)
    again = agent.events("gpu_attested")[before:]
    assert [e["uuid"] for e in again] == [replaying["UUID"]]
    history = httpx.get(
        f"{coordinator.url}/v1/marketplace/gpu/{bad['id']}/attestations", timeout=5
    ).json()
    assert [h["status"] for h in history] == ["failed", "failed"]
