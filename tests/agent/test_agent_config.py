"""AgentSettings: defaults < TOML < AITBC_AGENT_* env; every key validated, unknown keys named."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from agent.config import AgentSettings, load_settings
from agent.errors import EX_CONFIG, ConfigError
from agent.gpu import make_backend

DOCUMENTED_EXAMPLE = """
[coordinator]
url = "http://127.0.0.1:8000"
api_key_file = "/etc/aitbc-agent/api-key"
miner_id = "host-01"
timeout_s = 5
[agent]
state_dir = "/var/lib/aitbc-agent"
heartbeat_interval_s = 10
region = "eu-west"
[gpu]
backend = "nvml"
price_per_hour = "0.50"
exclude = []
[gpu.prices]
"NVIDIA H100 80GB HBM3" = "2.25"
[[gpu.simulated]]
model = "NVIDIA H100 80GB HBM3"
memory_mib = 81559
count = 4
[leases]
on_start = []
on_end = []
hook_timeout_s = 60
[health]
ignore_xids = [13, 31, 43, 45, 68, 109]
recover_after_ok_samples = 3
[metrics]
listen = ""
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AITBC_AGENT_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_the_spec_example_loads_with_its_values(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, DOCUMENTED_EXAMPLE))
    assert s.coordinator.miner_id == "host-01"
    assert s.coordinator.api_key_file == Path("/etc/aitbc-agent/api-key")
    assert s.agent.region == "eu-west"
    assert s.gpu.price_per_hour == Decimal("0.50")
    assert s.gpu.price_for("NVIDIA H100 80GB HBM3") == Decimal("2.25")
    assert s.gpu.price_for("Tesla T4") == Decimal("0.50")
    assert s.gpu.simulated[0].count == 4
    assert s.health.recover_after_ok_samples == 3
    assert s.metrics.host_port is None


def test_defaults_without_a_file() -> None:
    s = load_settings(None)
    assert s.gpu.backend == "nvml"
    assert s.agent.heartbeat_interval_s == 10
    assert s.health.ignore_xids == [13, 31, 43, 45, 68, 109]
    assert s.coordinator.url == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[gpu]\nbakend = "nvml"\n', "gpu.bakend"),
        ("[coordinator]\nurl_ = 'http://x'\n", "coordinator.url_"),
        ("[agent]\nheartbeat = 3\n", "agent.heartbeat"),
        ("[leases]\non_begin = []\n", "leases.on_begin"),
        ("[health]\nignore_xid = [1]\n", "health.ignore_xid"),
        ("[metrics]\nport = 9400\n", "metrics.port"),
        ("[gpus]\nbackend = 'nvml'\n", "gpus"),
        ("[[gpu.simulated]]\nmodel='X'\nmemory_mib=1\nmemory_gb=1\n", "gpu.simulated[0].memory_gb"),
    ],
)
def test_unknown_keys_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert f"unknown key '{key}'" in str(info.value)
    assert info.value.exit_code == EX_CONFIG


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[agent]\nheartbeat_interval_s = 0.4\n", "agent.heartbeat_interval_s"),
        ('[gpu]\nbackend = "cuda"\n', "gpu.backend"),
        ('[gpu]\nprice_per_hour = "-1"\n', "gpu.price_per_hour"),
        ('[gpu]\nprice_per_hour = "0.123456789"\n', "gpu.price_per_hour"),
        ('[gpu]\nprice_per_hour = "NaN"\n', "gpu.price_per_hour"),
        ('[gpu]\nprice_per_hour = "abc"\n', "gpu.price_per_hour"),
        ('[gpu.prices]\n"H100" = "0"\n', "gpu.prices.H100"),
        ("[gpu]\nexclude = [-1]\n", "gpu.exclude[0]"),
        ('[gpu]\nbackend = "simulated"\n', "gpu"),
        ("[coordinator]\nurl = 'ftp://x'\n", "coordinator.url"),
        ("[coordinator]\ntimeout_s = 0\n", "coordinator.timeout_s"),
        ("[leases]\non_start = 'script.sh'\n", "leases.on_start"),
        ("[leases]\nhook_timeout_s = -5\n", "leases.hook_timeout_s"),
        ("[health]\nrecover_after_ok_samples = 0\n", "health.recover_after_ok_samples"),
        ("[health]\nignore_xids = ['x']\n", "health.ignore_xids[0]"),
        ("[metrics]\nlisten = '9400'\n", "metrics.listen"),
        ("[agent]\nregion = '" + "x" * 65 + "'\n", "agent.region"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"bad value for '{key}'")):
        load_settings(write(tmp_path, text))


def test_env_overrides_the_file_which_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[agent]\nheartbeat_interval_s = 5\nregion = "eu-west"\n')
    monkeypatch.setenv("AITBC_AGENT_AGENT__HEARTBEAT_INTERVAL_S", "2.5")
    monkeypatch.setenv("AITBC_AGENT_HEALTH__IGNORE_XIDS", "[79]")
    s = load_settings(path)
    assert s.agent.heartbeat_interval_s == 2.5
    assert s.agent.region == "eu-west"  # from the file, untouched by env
    assert s.health.ignore_xids == [79]
    assert s.coordinator.timeout_s == 5  # default


def test_unknown_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AITBC_AGENT_GPU__BAKEND", "nvml")
    with pytest.raises(ConfigError, match=re.escape("unknown key 'gpu.bakend'")):
        load_settings(None)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("AITBC_AGENT_FOO", "foo"),
        ("AITBC_AGENT_COORDINATOR_URL", "coordinator_url"),  # one underscore: no section
        ("aitbc_agent_gpus__backend", "gpus.backend"),
    ],
)
def test_env_key_outside_every_section_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, key: str
) -> None:
    monkeypatch.setenv(name, "1")
    for path in (None, write(tmp_path, "")):
        with pytest.raises(
            ConfigError, match=re.escape(f"unknown key {key!r} (environment {name})")
        ):
            load_settings(path)


def test_bad_env_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AITBC_AGENT_AGENT__HEARTBEAT_INTERVAL_S", "0.1")
    with pytest.raises(ConfigError, match=re.escape("bad value for 'agent.heartbeat_interval_s'")):
        load_settings(None)


def test_missing_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[gpu\n"))


def test_prices_accept_toml_numbers_without_binary_noise(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[gpu]\nprice_per_hour = 0.1\n"))
    assert s.gpu.price_per_hour == Decimal("0.1")


def test_exclude_takes_uuids_and_indexes(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[gpu]\nexclude = [0, "GPU-abc"]\n'))
    assert s.gpu.exclude == [0, "GPU-abc"]


def test_simulated_faults_are_validated(tmp_path: Path) -> None:
    text = (
        '[gpu]\nbackend = "simulated"\n[[gpu.simulated]]\nmodel = "X"\nmemory_mib = 1024\n'
        'count = 2\nfaults = [{kind = "lost", at_sample = 1, unit = 2}]\n'
    )
    with pytest.raises(ConfigError, match="unit 2 is not below count 2"):
        load_settings(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"gpu\.simulated\.0\.faults\.0\.kind|faults\[0\]\.kind"):
        load_settings(
            write(tmp_path, text.replace('"lost"', '"melted"').replace("unit = 2", "unit = 0"))
        )


def test_simulated_config_builds_the_simulated_backend(tmp_path: Path) -> None:
    text = (
        '[gpu]\nbackend = "simulated"\nexclude = [1]\n[[gpu.simulated]]\nmodel = "NVIDIA L4"\n'
        "memory_mib = 23034\ncount = 3\nutilization_pct = [55]\n"
        "[health]\nrecover_after_ok_samples = 2\n"
    )
    s = load_settings(write(tmp_path, text))
    backend = make_backend(s.gpu, s.health, host="h")
    backend.open()
    assert backend.kind == "simulated"
    assert [g.uuid for g in backend.gpus()] == ["GPU-sim-h-0", "GPU-sim-h-2"]
    assert backend.sample()[0].utilization_pct == 55


def test_nvml_config_never_falls_back_to_simulated() -> None:
    assert make_backend(load_settings(None).gpu).kind == "nvml"


def test_api_key_sources_in_order(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api-key").write_text("from-credential")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    inline = AgentSettings(coordinator={"api_key": "inline", "api_key_file": str(key_file)})
    assert inline.coordinator.resolve_api_key(env) == "inline"
    from_file = AgentSettings(coordinator={"api_key_file": str(key_file)})
    assert from_file.coordinator.resolve_api_key(env) == "from-file"
    assert AgentSettings().coordinator.resolve_api_key(env) == "from-credential"
    assert AgentSettings().coordinator.resolve_api_key({}) is None


def test_api_key_file_problems_are_config_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        AgentSettings(coordinator={"api_key_file": str(empty)}).coordinator.resolve_api_key({})
    with pytest.raises(ConfigError, match=re.escape("cannot read coordinator.api_key_file")):
        AgentSettings(
            coordinator={"api_key_file": str(tmp_path / "no")}
        ).coordinator.resolve_api_key({})


def test_the_api_key_never_shows_in_repr() -> None:
    s = AgentSettings(coordinator={"api_key": "sekrit-key"})
    assert "sekrit-key" not in repr(s)
    assert "sekrit-key" not in str(s.model_dump())


def test_metrics_listen_parses_host_and_port(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[metrics]\nlisten = "127.0.0.1:9400"\n'))
    assert s.metrics.host_port == ("127.0.0.1", 9400)


def test_a_config_error_names_the_line_and_guesses_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[agent]\nregion = "eu"\n[gpu]\nbakend = "simulated"\n[metrics]\nlisten = "x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert f"unknown key 'gpu.bakend' at {path}:4 (did you mean 'backend'?)" in message
    assert f"bad value for 'metrics.listen' at {path}:6" in message


def test_a_config_error_says_when_the_environment_set_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[metrics]\nlisten = "127.0.0.1:9400"\n')
    monkeypatch.setenv("AITBC_AGENT_METRICS__LISTEN", "nope")
    monkeypatch.setenv("AITBC_AGENT_GPUU__BACKEND", "nvml")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "bad value for 'metrics.listen' (environment AITBC_AGENT_METRICS__LISTEN)" in message
    assert "did you mean section 'gpu'?" in message
