"""The systemd units verify cleanly and keep the promises of docs/operations.md; the example config
loads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.config import load_settings
from tests.support import REPO

UNITS = REPO / "systemd"
MISSING_BINARY = re.compile(r"Command /usr/local/bin/aitbc-(agent|coordinator) is not executable")


def _directives(unit: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return values


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("unit", ["aitbc-agent.service", "aitbc-coordinator.service"])
def test_systemd_analyze_verify_is_clean(unit: str) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(UNITS / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not MISSING_BINARY.search(line)
    ]
    assert complaints == []  # the one accepted complaint: ExecStart not installed here


def test_agent_unit_keeps_the_spec_promises() -> None:
    d = _directives(UNITS / "aitbc-agent.service")
    assert d["Type"] == ["notify"]
    assert d["ExecStart"] == ["/usr/local/bin/aitbc-agent run --config /etc/aitbc-agent/agent.toml"]
    assert d["User"] == ["aitbc-agent"]
    assert d["StateDirectory"] == ["aitbc-agent"]
    assert d["ConfigurationDirectory"] == ["aitbc-agent"]
    assert d["LoadCredential"] == ["api-key:/etc/aitbc-agent/api-key"]
    assert d["RestartPreventExitStatus"] == ["78"]
    assert "WatchdogSec" in d
    assert d.get("PrivateDevices", ["no"]) == ["no"]  # would hide /dev/nvidia*
    assert {"char-nvidia-frontend rw", "char-nvidia rw", "char-nvidiactl rw"} <= set(
        d["DeviceAllow"]
    )
    assert "ProtectClock" not in d  # implies a device rule that closes /dev/nvidia*
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_coordinator_unit_keeps_its_key_out_of_the_unit() -> None:
    d = _directives(UNITS / "aitbc-coordinator.service")
    assert d["User"] == ["aitbc-coordinator"]
    assert d["LoadCredential"] == ["bootstrap-keys:/etc/aitbc-coordinator/bootstrap-keys"]
    assert d["RestartPreventExitStatus"] == ["78"]
    assert not any("BOOTSTRAP_KEYS=" in v for v in d.get("Environment", []))


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = UNITS / "agent.toml.example"
    settings = load_settings(example)
    assert settings.gpu.backend == "nvml"
    text = example.read_text()
    for section, model in settings:
        for key in type(model).model_fields:  # type: ignore[attr-defined]
            if key == "api_key":
                assert "api_key =" in text
                continue
            assert (
                re.search(rf"^#?\s*{key}\s*=", text, re.M)
                or f"[{section}.{key}]" in text
                or (f"[[{section}.{key}]]" in text)
            ), f"{section}.{key} missing from the example"


def _char_majors(proc_devices: str) -> dict[str, set[int]]:
    """Names of /proc/devices' "Character devices" section → their major numbers."""
    majors: dict[str, set[int]] = {}
    section = ""
    for line in proc_devices.splitlines():
        if line.endswith(":"):
            section = line
            continue
        parts = line.split()
        if section.startswith("Character") and len(parts) == 2:
            majors.setdefault(parts[1], set()).add(int(parts[0]))
    return majors


@pytest.mark.parametrize("driver", ["r535", "r550"])
def test_the_agent_unit_opens_the_nvidia_devices_of_old_and_new_drivers(driver: str) -> None:
    """DeviceAllow=char-NAME is resolved through /proc/devices, whose NVIDIA names changed with
    driver 550.40 (nvidia-frontend → nvidia, nvidiactl): both generations must stay open."""
    names = _char_majors((REPO / f"tests/e2e/data/proc_devices_{driver}.txt").read_text())
    allowed: set[int] = set()
    for rule in _directives(UNITS / "aitbc-agent.service")["DeviceAllow"]:
        spec, _, _access = rule.partition(" ")
        if spec.startswith("char-"):
            allowed |= names.get(spec.removeprefix("char-"), set())
    assert 195 in allowed  # /dev/nvidiactl and /dev/nvidia0..N
    assert names["nvidia-uvm"] <= allowed  # CUDA
    assert names["nvidia-caps"] <= allowed  # MIG


def test_the_wheel_installs_the_units_the_example_and_the_docs_the_units_point_at() -> None:
    """`pip install` puts the units, the example config and the docs under its prefix
    (/usr/local for a system install), so an operator needs no checkout; Documentation= names
    the installed operations guide."""
    import tomllib

    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    shipped = {target: [REPO.glob(p) for p in patterns] for target, patterns in data_files.items()}
    names = {target: {f.name for g in globs for f in g} for target, globs in shipped.items()}
    assert {"aitbc-agent.service", "aitbc-coordinator.service", "agent.toml.example"} <= names[
        "share/aitbc-miner-agent/systemd"
    ]
    assert "operations.md" in names["share/doc/aitbc-miner-agent"]
    for unit in ("aitbc-agent.service", "aitbc-coordinator.service"):
        (doc,) = _directives(UNITS / unit)["Documentation"]
        assert doc == "file:///usr/local/share/doc/aitbc-miner-agent/operations.md"
