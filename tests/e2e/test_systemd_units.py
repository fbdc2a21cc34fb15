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
    assert "char-nvidia-frontend rw" in d["DeviceAllow"]
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
