"""`aitbc-agent` command line: exit codes, stdout only for output, probe document shape."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main

REPO = Path(__file__).resolve().parents[2]

SIMULATED = """
[gpu]
backend = "simulated"
[[gpu.simulated]]
model = "NVIDIA H100 80GB HBM3"
memory_mib = 81559
count = 2
utilization_pct = [35]
[[gpu.simulated]]
model = "NVIDIA L4"
memory_mib = 23034
"""

# The probe document's keys (plus the rest of the fingerprint and sample fields).
DOCUMENTED_GPU_KEYS = {
    "index", "uuid", "name", "memory_total_mib", "compute_capability", "pci_bus_id",
    "driver_version", "cuda_driver_version", "power_limit_w", "max_sm_clock_mhz",
    "max_memory_clock_mhz", "persistence_mode", "mig_mode", "mig_devices",
    "utilization_pct", "memory_utilization_pct", "memory_used_mib", "temperature_c",
    "power_draw_w", "sm_clock_mhz", "fan_pct", "pstate", "ecc_uncorrected_volatile",
    "throttle_reasons", "compute_process_count", "xid_events", "health", "health_reason",
}  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AITBC_AGENT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def sim_config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(SIMULATED)
    return path


def test_probe_json_prints_one_document_with_every_field(
    sim_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "--json", "--config", str(sim_config)]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert {"driver_version", "cuda_driver_version", "nvml_version", "gpus"} <= set(doc)
    assert [g["name"] for g in doc["gpus"]] == ["NVIDIA H100 80GB HBM3"] * 2 + ["NVIDIA L4"]
    for g in doc["gpus"]:
        assert set(g) >= DOCUMENTED_GPU_KEYS
    assert doc["gpus"][0]["utilization_pct"] == 35
    assert doc["gpus"][2]["memory_total_mib"] == 23034
    assert "probe_finished" in err


def test_probe_table_lists_model_uuid_and_health(
    sim_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "--config", str(sim_config)]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA L4" in out
    assert "GPU-sim-" in out
    assert "35 %" in out
    assert "ok" in out


def test_config_check_accepts_a_good_file(
    sim_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", "--config", str(sim_config)]) == 0
    assert "ok" in capsys.readouterr().out


def test_config_check_names_an_unknown_key_and_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[gpu]\nbakend = "nvml"\n')
    assert main(["config", "check", "--config", str(path)]) == 78
    out, err = capsys.readouterr()
    assert out == ""
    assert "unknown key 'gpu.bakend'" in err


def test_config_check_on_a_missing_file_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", "--config", str(tmp_path / "none.toml")]) == 78
    assert "does not exist" in capsys.readouterr().err


def test_probe_with_a_bad_config_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\nheartbeat_interval_s = 0\n")
    assert main(["probe", "--config", str(path)]) == 78


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="a real NVML is installed here"
)
def test_probe_without_nvml_exits_69_naming_the_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["probe", "--json"]) == 69
    out, err = capsys.readouterr()
    assert out == ""
    assert "libnvidia-ml.so.1" in err


def test_python_dash_m_agent_runs_the_cli(sim_config: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "probe", "--json", "--config", str(sim_config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["gpus"]) == 3
    first_log = json.loads(result.stderr.splitlines()[0])  # JSON lines when not a TTY
    assert first_log["event"] == "probe_finished"


def test_gpu_layer_imports_with_only_the_standard_library_and_pynvml(tmp_path: Path) -> None:
    # A bare GPU host: no pydantic, structlog, rich... only the repo and pynvml.py on the path.
    import pynvml  # noqa: TID251  # only to find the file to copy

    shim = tmp_path / "site"
    shim.mkdir()
    (shim / "pynvml.py").write_text(Path(pynvml.__file__).read_text())
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(REPO)!r}, {str(shim)!r}]\n"
        "import agent.gpu, agent.gpu.nvml, agent.gpu.probe\n"
        "from agent.gpu import SimulatedBackend, SimulatedGpuSpec\n"
        "b = SimulatedBackend([SimulatedGpuSpec('X', 1024, count=2)], host='h'); b.open()\n"
        "assert len(b.sample()) == 2\n"
        "third = {'pydantic', 'pydantic_settings', 'structlog', 'rich', 'httpx'}\n"
        "third &= set(sys.modules)\n"
        "assert not third, third\n"
        "print(agent.gpu.nvml.BINDING_PROBLEM is not None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Outside the nvidia-ml-py distribution the binding check notices (open() would refuse).
    assert result.stdout.strip() == "True"


# -- run: refuses to start without its config file or an API key ----------------------------


@pytest.fixture
def fake_daemon(monkeypatch: pytest.MonkeyPatch) -> list[Path | None]:
    """`agent.service.daemon.run` replaced: records the config path instead of serving forever."""
    import agent.service.daemon

    started: list[Path | None] = []

    def run(settings: object, *, config_path: Path | None = None) -> int:
        started.append(config_path)
        return 0

    monkeypatch.setattr(agent.service.daemon, "run", run)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    return started


def test_run_without_any_api_key_exits_78_naming_the_three_ways(
    sim_config: Path, fake_daemon: list[Path | None], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(sim_config)]) == 78
    assert fake_daemon == []
    err = capsys.readouterr().err
    assert "api_key_file" in err
    assert "AITBC_AGENT_COORDINATOR__API_KEY" in err
    assert "credential 'api-key'" in err


def test_run_with_a_key_from_the_environment_starts(
    sim_config: Path, fake_daemon: list[Path | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AITBC_AGENT_COORDINATOR__API_KEY", "k")
    assert main(["run", "--config", str(sim_config)]) == 0
    assert fake_daemon == [sim_config]


def test_config_check_without_a_key_warns_but_passes(
    sim_config: Path, fake_daemon: list[Path | None], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", "--config", str(sim_config)]) == 0
    out, err = capsys.readouterr()
    assert "ok" in out
    assert "api_key_not_found" in err


def test_config_check_refuses_a_missing_api_key_file_as_run_would(
    tmp_path: Path, fake_daemon: list[Path | None], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    missing = tmp_path / "no-such-key"
    path.write_text(f'[coordinator]\napi_key_file = "{missing}"\n' + SIMULATED)
    assert main(["config", "check", "--config", str(path)]) == 78
    assert "api_key_file" in capsys.readouterr().err
    assert main(["run", "--config", str(path)]) == 78  # what the check predicted
    assert fake_daemon == []


def test_run_without_config_and_no_default_file_exits_78_naming_it(
    tmp_path: Path,
    fake_daemon: list[Path | None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    default = tmp_path / "etc" / "agent.toml"
    monkeypatch.setattr("agent.cli.DEFAULT_CONFIG_PATH", default)
    monkeypatch.setenv("AITBC_AGENT_COORDINATOR__API_KEY", "k")  # only the file is missing
    assert main(["run"]) == 78
    assert fake_daemon == []  # before: it ran on defaults
    err = capsys.readouterr().err
    assert str(default) in err
    assert "does not exist" in err


def test_probe_without_config_falls_back_to_defaults_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    default = tmp_path / "etc" / "agent.toml"
    monkeypatch.setattr("agent.cli.DEFAULT_CONFIG_PATH", default)
    monkeypatch.setenv("AITBC_AGENT_GPU__BACKEND", "simulated")
    monkeypatch.setenv(
        "AITBC_AGENT_GPU__SIMULATED", '[{"model": "NVIDIA L4", "memory_mib": 23034}]'
    )
    assert main(["probe", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [g["name"] for g in json.loads(out)["gpus"]] == ["NVIDIA L4"]
    assert "config_file_missing" in err
    assert str(default) in err
    # A --config the operator named is never replaced by defaults.
    assert main(["probe", "--config", str(default)]) == 78
