"""scripts/install.sh: a virtualenv under /opt (PEP 668 distributions refuse a system pip
install), commands and docs where the units look for them, a config never overwritten.

Run with `--root`, so the whole tree lands in a temporary directory: what a container-less
test machine allows. Installing the dependencies takes seconds from pip's cache (`make test`
filled it when it built the test virtualenv).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from tests.support import REPO

SCRIPT = REPO / "scripts" / "install.sh"
PREFIX = "/opt/aitbc-miner-agent"
UNITS = ("aitbc-agent.service", "aitbc-coordinator.service")


def run_install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def on_root(root: Path, path: str) -> Path:
    """`path` as the installed system would see it: every symlink on the way (absolute ones
    included, as the installer writes them) resolves inside `root`."""
    current, parts, hops = root, list(PurePosixPath(path).parts[1:]), 0
    while parts:
        candidate = current / parts.pop(0)
        if not candidate.is_symlink():
            current = candidate
            continue
        hops += 1
        assert hops < 40, f"symlink loop at {path}"
        target = PurePosixPath(os.readlink(candidate))
        if target.is_absolute():
            current, parts = root, [*target.parts[1:], *parts]
        else:
            parts = [*target.parts, *parts]
    return current


def unit_values(unit: Path, key: str) -> list[str]:
    prefix = f"{key}="
    return [
        line[len(prefix) :] for line in unit.read_text().splitlines() if line.startswith(prefix)
    ]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    done = run_install(root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installed aitbc-agent 0.2.0" in done.stdout
    return root


def test_the_programs_run_from_their_own_virtualenv(installed: Path) -> None:
    venv = installed / PREFIX.lstrip("/")
    assert (venv / "pyvenv.cfg").is_file()
    for program in ("aitbc-agent", "aitbc-coordinator"):
        link = installed / "usr/local/bin" / program
        assert os.readlink(link) == f"{PREFIX}/bin/{program}"  # the path on the real system
        version = subprocess.run(
            [str(on_root(installed, f"/usr/local/bin/{program}")), "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "0.2.0" in version.stdout


def test_the_package_data_is_installed(installed: Path) -> None:
    venv = installed / PREFIX.lstrip("/")
    [site] = list(venv.glob("lib/python3*/site-packages"))
    for data in (
        "coordinator_stub/console/index.html",
        "coordinator_stub/console/app.js",
        "coordinator_stub/console/app.css",
        "agent/attest/attest.ptx",
        "aitbc_common/gpu_models.toml",
        "coordinator_stub/db/migrations/versions/0004_attestations.py",
    ):
        assert (site / data).is_file(), data


def test_the_units_find_their_command_and_their_docs(installed: Path) -> None:
    for name in UNITS:
        unit = installed / "etc/systemd/system" / name
        assert unit.read_text() == (REPO / "systemd" / name).read_text()
        [exec_start] = unit_values(unit, "ExecStart")
        command = exec_start.split()[0]
        assert os.access(on_root(installed, command), os.X_OK), command
        for doc in unit_values(unit, "Documentation"):
            assert doc.startswith("file://"), doc
            assert on_root(installed, doc.removeprefix("file://")).is_file(), doc


def test_the_example_config_is_installed_once_and_then_kept(installed: Path) -> None:
    config = installed / "etc/aitbc-agent/agent.toml"
    assert config.read_text() == (REPO / "systemd/agent.toml.example").read_text()
    assert config.stat().st_mode & 0o777 == 0o644
    config.write_text(config.read_text() + "\n# edited by the operator\n")
    again = run_install(installed)  # an upgrade
    assert again.returncode == 0, again.stderr
    assert "keeping your /etc/aitbc-agent/agent.toml" in again.stdout
    assert config.read_text().endswith("# edited by the operator\n")


def test_a_missing_interpreter_or_option_is_a_clear_error(tmp_path: Path) -> None:
    no_python = run_install(tmp_path, "--python", "python-that-is-not-there")
    assert no_python.returncode == 1
    assert "no python-that-is-not-there" in no_python.stderr
    bad = run_install(tmp_path, "--frobnicate")
    assert bad.returncode == 64
    assert "unknown option --frobnicate" in bad.stderr
    assert not (tmp_path / "opt").exists()  # refused before touching anything
