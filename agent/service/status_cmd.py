"""`aitbc-agent status [--json]`: GPUs, leases and the last heartbeat, from the state directory.

Reads `state.json` (what the agent must not forget) and `status.json` (the view the running
agent rewrites every heartbeat); never contacts the coordinator. The agent counts as running
when the pid in `status.json` is alive.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from pathlib import Path
from typing import Any

from agent.config import AgentSettings
from agent.errors import StateError
from agent.lease.state import StateStore


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_status(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {str(path)!r}: {exc}") from exc
    return doc if isinstance(doc, dict) else {}


def status_document(settings: AgentSettings) -> dict[str, Any]:
    """The status as one JSON-ready document."""
    from agent.service.status import STATUS_FILE

    store = StateStore(settings.agent.state_dir)
    state = store.load()
    view = _read_status(store.state_dir / STATUS_FILE)
    gpus = view.get("gpus") or [
        {"uuid": uuid, "gpu_id": gpu_id} for uuid, gpu_id in sorted(state.gpu_ids.items())
    ]
    return {
        "state_dir": str(store.state_dir),
        "running": _pid_alive(view.get("pid")),
        "pid": view.get("pid"),
        "miner_id": state.miner_id,
        "coordinator_url": state.coordinator_url or settings.coordinator.url,
        "coordinator_state": view.get("coordinator_state"),
        "last_heartbeat_at": view.get("last_heartbeat_at"),
        "status_written_at": view.get("written_at"),
        "stale": not _pid_alive(view.get("pid")),  # the values below are not being updated
        "gpus": gpus,
        "leases": [
            lease.model_dump(mode="json")
            for lease in sorted(state.leases.values(), key=lambda lease: lease.end_time)
        ],
    }


EX_NOT_RUNNING = 3  # as `systemctl status` of an inactive unit (LSB "program is not running")


def main(settings: AgentSettings, *, as_json: bool = False) -> int:
    """Print the status; exit 0 while the agent runs, 3 when it does not (its last values are
    then printed marked stale: nothing is updating them)."""
    doc = status_document(settings)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print(doc)
    return 0 if doc["running"] else EX_NOT_RUNNING


def printable(value: object) -> str:
    """Text from the state or the coordinator as it may reach a terminal: control and format
    characters (escape sequences, newlines, bidi overrides) shown as `?`."""
    text = str(value)
    return "".join("?" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def _print(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def cell(value: object) -> Text:  # a Text is never read as rich markup ("[bold]...")
        return Text(printable(value))

    width = None if sys.stdout.isatty() else 160
    console = Console(file=sys.stdout, width=width)
    if doc["running"]:
        running = f"running (pid {doc['pid']})"
    else:
        written = doc.get("status_written_at") or "never"
        running = f"NOT RUNNING — the values below are stale, last written {written}"
    console.print(
        cell(
            f"agent {running} · miner {doc['miner_id'] or '—'} · coordinator "
            f"{doc['coordinator_url']} ({doc['coordinator_state'] or 'unknown'}) · "
            f"last heartbeat {doc['last_heartbeat_at'] or '—'}"
        )
    )
    gpus = Table(title="GPUs")
    for column in ("#", "uuid", "gpu id", "model", "health", "util"):
        gpus.add_column(column, no_wrap=True)
    for g in doc["gpus"]:
        health = g.get("health") or "—"
        if g.get("health_reason"):
            health += f" ({g['health_reason']})"
        util = g.get("utilization_pct")
        gpus.add_row(
            cell(g.get("index", "—")),
            cell(g.get("uuid") or "—"),
            cell(g.get("gpu_id") or "—"),
            cell(g.get("name") or "—"),
            cell(health),
            cell("—" if util is None else f"{util} %"),
        )
    console.print(gpus)
    leases = Table(title="Leases")
    for column in ("booking", "gpu", "client", "ends", "phase", "ack"):
        leases.add_column(column, no_wrap=True)
    for lease in doc["leases"]:
        ack = "—"
        if lease["ack_state"]:
            ack = lease["ack_state"] + (" ✓" if lease["acked"] else " (owed)")
        leases.add_row(
            cell(lease["booking_id"]),
            cell(lease["gpu_uuid"]),
            cell(lease["client_id"] or "—"),
            cell(lease["end_time"]),
            cell(lease["phase"]),
            cell(ack),
        )
    if not doc["leases"]:
        leases.caption = "no leases"
    console.print(leases)
