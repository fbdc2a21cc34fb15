"""`make demo` runs the whole story and exits 0."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO


def test_demo_runs_a_full_lease_cycle_and_exits_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("on_start hook", "lease_state started", "on_end hook", "is available again"):
        assert step in proc.stdout
