"""The state file: atomic, durable, versioned; a full or read-only disk is a clear error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.errors import StateError
from agent.lease.state import SCHEMA_VERSION, AgentState, HeldLease, StateStore, write_atomic
from tests.support import REPO

END = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def _lease(booking_id: str = "bk_1", phase: str = "started") -> HeldLease:
    return HeldLease(
        booking_id=booking_id,
        gpu_uuid="GPU-sim-h-0",
        gpu_index=0,
        gpu_id="gpu_1",
        client_id="alice",
        end_time=END,
        generation=1,
        phase=phase,  # type: ignore[arg-type]
    )


def test_missing_file_loads_as_fresh_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path).load()
    assert state.miner_id is None
    assert state.leases == {}


def test_round_trip_keeps_leases_and_gpu_ids(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    state = AgentState(miner_id="host-01", gpu_ids={"GPU-sim-h-0": "gpu_1"})
    lease = _lease()
    lease.owe_ack("started", 1)
    state.leases[lease.booking_id] = lease
    store.save(state)

    loaded = store.load()
    assert loaded.miner_id == "host-01"
    assert loaded.gpu_ids == {"GPU-sim-h-0": "gpu_1"}
    assert loaded.leases["bk_1"].phase == "started"
    assert loaded.leases["bk_1"].ack_pending
    assert loaded.leases["bk_1"].end_time == END
    assert json.loads(store.path.read_text())["schema_version"] == SCHEMA_VERSION


def test_save_leaves_no_temp_file_and_private_mode(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(AgentState(miner_id="m"))
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert store.path.stat().st_mode & 0o777 == 0o600


def test_damaged_file_is_a_clear_error_not_a_fresh_start(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text('{"leases": {"bk_1": {"booking_id": 3')
    with pytest.raises(StateError, match="damaged"):
        store.load()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StateError, match="newer"):
        store.load()


def test_unknown_keys_from_a_newer_patch_release_are_ignored(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text(json.dumps({"schema_version": 1, "miner_id": "m", "future": 1}))
    assert store.load().miner_id == "m"


def test_missing_directory_is_a_state_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot write"):
        write_atomic(tmp_path / "nope" / "state.json", b"{}")


def test_read_only_directory_keeps_the_old_file() -> None:
    """The agent's user cannot write its state directory. Root ignores directory permissions,
    so when the suite runs as root (CI does) the save runs as `nobody` in a subprocess."""
    as_root = os.geteuid() == 0
    python, env = sys.executable, dict(os.environ)
    if as_root:
        # `nobody` cannot reach this interpreter when it lives under /root (pyenv): use the
        # system's interpreter of the same version, with this environment's packages.
        python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        if not os.access(python, os.X_OK):
            pytest.skip(f"running as root and {python} is missing: cannot drop privileges")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])
    # Not tmp_path: its parents are private to root, and `nobody` must reach this directory.
    directory = Path(tempfile.mkdtemp(prefix="aitbc-state-ro-"))
    try:
        directory.chmod(0o755)
        StateStore(directory).save(AgentState(miner_id="old"))
        (directory / "state.json").chmod(0o644)
        directory.chmod(0o555)
        script = (
            "from pathlib import Path\n"
            "from agent.errors import StateError\n"
            "from agent.lease.state import AgentState, StateStore\n"
            f"store = StateStore(Path({str(directory)!r}))\n"
            "try:\n"
            "    store.save(AgentState(miner_id='new'))\n"
            "except StateError as exc:\n"
            "    print('ERR', exc)\n"
            "    raise SystemExit(3)\n"
        )
        proc = subprocess.run(
            [python, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=directory,
            env=env,
            user=65534 if as_root else None,
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        assert "cannot write" in proc.stdout
        assert StateStore(directory).load().miner_id == "old"
        assert [p.name for p in directory.iterdir()] == ["state.json"]
    finally:
        directory.chmod(0o700)
        shutil.rmtree(directory)


def test_full_disk_is_a_clear_error_and_the_old_file_survives(tmp_path: Path) -> None:
    """A file-size limit makes write() fail like a full disk would (root cannot dodge it)."""
    store = StateStore(tmp_path)
    store.save(AgentState(miner_id="old"))
    script = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from pathlib import Path
from agent.errors import StateError
from agent.lease.state import AgentState, StateStore
store = StateStore(Path({str(tmp_path)!r}))
try:
    store.save(AgentState(miner_id="x" * 100, gpu_ids={{str(i): "g" * 30 for i in range(500)}}))
except StateError as exc:
    print("ERR", exc)
    sys.exit(3)
sys.exit(0)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 3, proc.stderr
    assert "cannot write" in proc.stdout
    assert StateStore(tmp_path).load().miner_id == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # temp file removed


def test_prune_drops_only_settled_tombstones_older_than_a_day() -> None:
    state = AgentState()
    old_done = _lease("bk_old", "stopped")
    old_done.updated_at = END
    old_owed = _lease("bk_owed", "stopped")
    old_owed.updated_at = END
    old_owed.owe_ack("stopped", 2)
    active = _lease("bk_active", "started")
    state.leases = {lease.booking_id: lease for lease in (old_done, old_owed, active)}

    dropped = state.prune(END + timedelta(days=2))

    assert dropped == ["bk_old"]
    assert set(state.leases) == {"bk_owed", "bk_active"}
