"""`aitbc-agent status`: what it says about an agent that is not running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def test_status_of_a_stopped_agent_exits_3_and_marks_its_values_stale(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "status.json").write_text(
        json.dumps(
            {
                "pid": 2**22 + 12345,  # no such process
                "written_at": "2026-12-04T01:00:00+00:00",
                "coordinator_state": "ok",
                "gpus": [{"index": 0, "uuid": "GPU-0", "name": "H100", "health": "ok"}],
            }
        )
    )
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{state}"\n')
    for extra, check in ((["--json"], '"stale": true'), ([], "NOT RUNNING")):
        result = subprocess.run(
            [sys.executable, "-m", "agent", "status", *extra, "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 3, result.stderr
        assert check in result.stdout
