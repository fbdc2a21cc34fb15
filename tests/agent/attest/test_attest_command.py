"""`aitbc-agent attest` against the fake NVML and the fake libcuda: an honest H100 passes, and
each cheat is caught with a reason that says what gave it away."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fake_cuda.fakelib import FakeCuda, honest_h100
from tests.fake_nvml.fakelib import FakeNvmlConfig, build, document, gpu
from tests.support import REPO


def nvml_gpu(index: int, **overrides: Any) -> dict[str, Any]:
    """The fake NVML's H100, with the UUID the fake CUDA device reports."""
    return gpu(index, uuid=honest_h100(index)["UUID"], **overrides)


def attest(
    tmp_path: Path,
    *,
    nvml: list[dict[str, Any]] | None = None,
    cuda: FakeCuda | None = None,
    args: tuple[str, ...] = (),
) -> tuple[int, dict[str, Any]]:
    nvml_doc = document(0)
    nvml_doc["gpus"] = nvml if nvml is not None else [nvml_gpu(0)]
    config = FakeNvmlConfig(tmp_path / "fake-nvml.json", nvml_doc)
    state = tmp_path / "state"
    agent_toml = tmp_path / "agent.toml"
    agent_toml.write_text(f'[agent]\nstate_dir = "{state}"\n[gpu]\nbackend = "nvml"\n')
    env = config.env(build())
    if cuda is not None:
        fake = cuda.env()
        env["LD_LIBRARY_PATH"] = f"{fake.pop('LD_LIBRARY_PATH')}:{env['LD_LIBRARY_PATH']}"
        env.update(fake)
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "attest", "--json", "--config", str(agent_toml), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def checks(doc: dict[str, Any], index: int = 0) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["gpus"][index]["checks"]}


def failed(doc: dict[str, Any], index: int = 0) -> dict[str, str]:
    return {c["name"]: c["reason"] for c in doc["gpus"][index]["checks"] if not c["ok"]}


def test_an_honest_h100_is_verified(tmp_path: Path) -> None:
    code, doc = attest(tmp_path, cuda=FakeCuda())
    assert code == 0
    [g] = doc["gpus"]
    assert g["verified"] is True
    assert failed(doc) == {}
    assert set(checks(doc)) >= {
        "model_known",
        "pci_device_id",
        "memory_total",
        "compute_capability",
        "bar1",
        "identity_stable",
        "cuda_device",
        "proof_of_memory",
        "fp32_throughput",
        "memory_bandwidth",
    }
    assert g["model"] == "H100 SXM5 80GB"
    assert g["measured"]["fp32_tflops"] == pytest.approx(60, rel=0.01)
    assert g["measured"]["memory_tbps"] == pytest.approx(2.9, rel=0.01)
    assert g["measured"]["filled_gib"] == pytest.approx(81559 * 0.9 / 1024, rel=0.001)
    assert g["measured"]["words_checked"] == 64
    assert doc["cuda_driver_version"] == "12.4"


def test_less_memory_than_claimed_is_caught(tmp_path: Path) -> None:
    # The card can hold 24 GiB, whatever NVML and CUDA say of it.
    cuda = FakeCuda([{**honest_h100(0), "MEMORY_MIB": 24576}])
    code, doc = attest(tmp_path, cuda=cuda)
    assert code == 1
    assert doc["gpus"][0]["verified"] is False
    reason = failed(doc)["proof_of_memory"]
    assert "could not allocate 71.7 GiB" in reason
    assert "CUDA_ERROR_OUT_OF_MEMORY" in reason


def test_a_slow_gpu_is_caught(tmp_path: Path) -> None:
    cuda = FakeCuda([{**honest_h100(0), "TFLOPS": 20.0, "TBPS": 0.9}])  # an RTX 3090's pace
    code, doc = attest(tmp_path, cuda=cuda)
    assert code == 1
    bad = failed(doc)
    assert set(bad) == {"fp32_throughput", "memory_bandwidth"}
    assert bad["fp32_throughput"].startswith("20 TFLOPS, below the H100 SXM5 80GB's band")
    assert "below" in bad["memory_bandwidth"]


def test_replayed_answers_are_caught(tmp_path: Path) -> None:
    # The "card" serves a fill recorded for another challenge, whatever seed it is given.
    cuda = FakeCuda([{**honest_h100(0), "REPLAY_SEED": "0x1234"}])
    code, doc = attest(tmp_path, cuda=cuda)
    assert code == 1
    assert set(failed(doc)) == {"proof_of_memory"}
    assert "64 wrong (not this challenge's fill)" in failed(doc)["proof_of_memory"]


def test_wrong_answers_are_caught(tmp_path: Path) -> None:
    code, doc = attest(tmp_path, cuda=FakeCuda([{**honest_h100(0), "WRONG": 1}]))
    assert code == 1
    assert set(failed(doc)) == {"proof_of_memory"}


def test_a_pci_id_that_is_not_the_model_is_caught(tmp_path: Path) -> None:
    # An RTX 4090 whose NVML was patched to say "H100" (and CUDA agrees, to be thorough).
    code, doc = attest(tmp_path, nvml=[nvml_gpu(0, pci_device_id=0x2684)], cuda=FakeCuda())
    assert code == 1
    assert set(failed(doc)) == {"pci_device_id"}
    assert failed(doc)["pci_device_id"] == (
        "PCI device id 0x2684 is a GeForce RTX 4090, not a H100 SXM5 80GB (0x2330)"
    )


def test_a_geforce_bar1_and_an_nvml_only_lie_are_caught(tmp_path: Path) -> None:
    # A shim renames the card in NVML only: CUDA still sees the 24 GiB RTX 4090 it is.
    nvml = [nvml_gpu(0, bar1_total_mib=256)]
    cuda = FakeCuda([{**honest_h100(0), "NAME": "NVIDIA GeForce RTX 4090", "TOTAL_MIB": 24564}])
    code, doc = attest(tmp_path, nvml=nvml, cuda=cuda)
    assert code == 1
    bad = failed(doc)
    assert bad["bar1"] == "BAR1 256 MiB, below the model's 65536 MiB"
    assert "CUDA names it 'NVIDIA GeForce RTX 4090'" in bad["cuda_device"]
    assert "CUDA says 24564 MiB, NVML 81559 MiB" in bad["cuda_device"]


def test_without_libcuda_the_nvml_checks_still_run(tmp_path: Path) -> None:
    code, doc = attest(tmp_path, cuda=None)  # no libcuda.so.1 on this machine
    assert code == 1
    g = doc["gpus"][0]
    assert g["verified"] is False
    assert set(failed(doc)) == {"cuda_self_test"}
    assert failed(doc)["cuda_self_test"].startswith(
        "no CUDA driver: dlopen: libcuda.so.1 not found"
    )
    assert checks(doc)["pci_device_id"]["ok"] is True


def test_the_shipped_ptx_loads_on_a_driver_older_than_the_toolkit(tmp_path: Path) -> None:
    # PTX ISA 7.0 is CUDA 11.0 (R450): nvcc 13 wrote 9.0, scripts/build_ptx.py lowered it.
    code, doc = attest(tmp_path, cuda=FakeCuda(max_ptx="7.0"))
    assert code == 0, failed(doc)
    code, doc = attest(tmp_path, cuda=FakeCuda(max_ptx="6.5"))
    assert code == 1
    assert "CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in failed(doc)["cuda_self_test"]


def test_a_board_swapped_behind_a_uuid_is_caught(tmp_path: Path) -> None:
    code, _ = attest(tmp_path, cuda=FakeCuda())
    assert code == 0
    code, doc = attest(tmp_path, nvml=[nvml_gpu(0, serial="1650000099999")], cuda=FakeCuda())
    assert code == 1
    assert failed(doc)["identity_stable"].startswith(
        "another board answers to this UUID: serial '1654922000000' → '1650000099999'"
    )


def test_a_model_outside_the_table_is_not_verified(tmp_path: Path) -> None:
    code, doc = attest(tmp_path, nvml=[nvml_gpu(0, name="NVIDIA Mystery 9000")], cuda=FakeCuda())
    assert code == 1
    assert "not in the model table" in failed(doc)["model_known"]
