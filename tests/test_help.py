"""`--help` of every command of both programs says what it does, how to call it, and how it ends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO

COMMANDS = [
    ["agent", "--help"],
    ["agent", "run", "--help"],
    ["agent", "probe", "--help"],
    ["agent", "status", "--help"],
    ["agent", "config", "check", "--help"],
    ["coordinator_stub", "--help"],
    ["coordinator_stub", "serve", "--help"],
    ["coordinator_stub", "migrate", "--help"],
    ["coordinator_stub", "keys", "--help"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_has_a_description_exit_codes_and_where_settings_come_from(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "exit codes:" in text
    assert "78" in text  # bad configuration, on both
    assert "docs/configuration.md" in text
    if len(argv) > 2:
        assert "examples:" in text  # each subcommand shows how to call it
    if argv[0] == "coordinator_stub":
        assert "keys create --role admin" in text  # a first admin key outside systemd


@pytest.mark.parametrize("module", ["agent", "coordinator_stub"])
def test_version(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--version"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "0.2.0" in result.stdout
