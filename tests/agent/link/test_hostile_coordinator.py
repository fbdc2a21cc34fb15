"""What a coordinator (or something in between) sends never reaches a hook, the state file or
the terminal unchecked: lease fields are validated at the wire, `status` prints no control
characters, and an inline key in a world-readable config draws a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from agent.link.client import CoordinatorClient
from agent.service.status_cmd import _print, printable
from tests.support import REPO

GOOD = {
    "booking_id": "bk_0123456789abcdef",
    "gpu_id": "gpu_0123456789abcdef",
    "gpu_uuid": "GPU-8d6f1c2e-0000-1111-2222-333344445555",
    "client_id": "alice",
    "end_time": "2026-12-04T03:00:00Z",
    "generation": 1,
    "state": "active",
}


def leases_answer(*leases: dict[str, Any]) -> CoordinatorClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"lease_version": 7, "leases": list(leases)})

    return CoordinatorClient(
        "http://coordinator.test/",
        api_key="k",
        miner_id="host-01",
        timeout_s=2,
        transport=httpx.MockTransport(handler),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_id", "x$(touch PWNED)\n"),
        ("client_id", "nul\x00byte"),
        ("client_id", "\x1b[31mred"),
        ("booking_id", "bk_1; rm -rf /"),
        ("gpu_uuid", "GPU-0\nAITBC_GPU_INDEX=7"),
        ("generation", -1),
    ],
)
def test_a_lease_with_a_hostile_field_is_dropped_and_the_rest_kept(field: str, value: Any) -> None:
    bad = {**GOOD, "booking_id": "bk_ffffffffffffffff", field: value}
    with structlog.testing.capture_logs() as logs:
        answer = leases_answer(bad, GOOD).leases(since=None, wait_s=0)
    assert [lease.booking_id for lease in answer.leases] == [GOOD["booking_id"]]
    dropped = [e for e in logs if e["event"] == "lease_dropped_invalid"]
    assert len(dropped) == 1
    assert field in dropped[0]["problems"]
    assert str(value) not in str(dropped[0])  # the hostile text itself is not logged


def test_an_ordinary_lease_passes_unchanged() -> None:
    (lease,) = leases_answer(GOOD).leases(since=None, wait_s=0).leases
    assert (lease.client_id, lease.gpu_uuid, lease.generation) == (
        "alice",
        GOOD["gpu_uuid"],
        1,
    )


def test_status_prints_no_control_characters_nor_markup(capsys: pytest.CaptureFixture[str]) -> None:
    assert printable("ok\x1b[2Jnext\nline\u202e") == "ok?[2Jnext?line?"
    doc = {
        "pid": 1,
        "running": True,
        "miner_id": "host-01",
        "coordinator_url": "http://c",
        "coordinator_state": "ok",
        "last_heartbeat_at": None,
        "gpus": [{"index": 0, "uuid": "GPU-0", "name": "\x1b]0;owned\x07[bold]H100[/bold]"}],
        "leases": [
            {
                "booking_id": "bk_1",
                "gpu_uuid": "GPU-0",
                "client_id": "eve\x1b[8m",
                "end_time": "2026-12-04T03:00:00Z",
                "phase": "started",
                "ack_state": None,
                "acked": False,
            }
        ],
    }
    _print(doc)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "[bold]H100[/bold]" in out  # shown as text, never read as markup


def _config(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[coordinator]\napi_key = "inline-secret-key"\n[agent]\nstate_dir = "'
        + str(tmp_path / "state")
        + '"\n[gpu]\nbackend = "simulated"\n[[gpu.simulated]]\nmodel = "X"\nmemory_mib = 1024\n'
    )
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_an_inline_key_in_a_file_others_can_read_draws_a_warning(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    path = _config(tmp_path, mode)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "config", "check", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ("api_key_readable_by_others" in result.stderr) is warned
    assert "inline-secret-key" not in result.stderr + result.stdout
