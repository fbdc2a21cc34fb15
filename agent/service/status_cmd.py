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
from datetime import UTC, datetime
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
    running = _pid_alive(view.get("pid"))
    return {
        "state_dir": str(store.state_dir),
        "running": running,
        "pid": view.get("pid"),
        "miner_id": state.miner_id,
        "coordinator_url": state.coordinator_url or settings.coordinator.urls[0],
        "coordinator_state": view.get("coordinator_state"),
        "last_heartbeat_at": view.get("last_heartbeat_at"),
        "status_written_at": view.get("written_at"),
        "stale": not running,  # the values below are not being updated
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


def age(moment: str | None, now: datetime | None = None) -> str:
    """`"4 s ago"`, `"3 min ago"`, `"2 h ago"` for an ISO time; `"—"` when there is none."""
    if not moment:
        return "—"
    try:
        then = datetime.fromisoformat(moment)
    except ValueError:
        return printable(moment)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def short_time(moment: str) -> str:
    """`2026-12-04T06:40:52.636529Z` → `12-04 06:40Z` (a lease's end, to the minute)."""
    try:
        return datetime.fromisoformat(moment).astimezone(UTC).strftime("%m-%d %H:%MZ")
    except ValueError:
        return moment


def _print(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.text import Text

    from agent.service.tables import Column, render, short_uuid, terminal_width

    width = terminal_width(sys.stdout)
    if doc["running"]:
        running = f"running (pid {doc['pid']})"
    else:
        written = age(doc.get("status_written_at"))
        running = f"NOT RUNNING — the values below are stale (written {written})"
    Console(file=sys.stdout, width=width).print(
        Text(  # a Text is never read as rich markup ("[bold]...")
            printable(
                f"agent {running} · miner {doc['miner_id'] or '—'} · coordinator "
                f"{doc['coordinator_url']} ({doc['coordinator_state'] or 'unknown'}) · "
                f"last heartbeat {age(doc['last_heartbeat_at'])}"
            )
        )
    )
    gpus = doc["gpus"]

    def health(g: dict[str, Any]) -> str:
        text = g.get("health") or "—"
        return text + (f" ({g['health_reason']})" if g.get("health_reason") else "")

    def util(g: dict[str, Any]) -> str:
        return "—" if g.get("utilization_pct") is None else f"{g['utilization_pct']} %"

    render(
        "GPUs",
        [
            Column("#", [printable(g.get("index", "—")) for g in gpus]),
            Column("uuid", [printable(g.get("uuid") or "—") for g in gpus], 2, short_uuid),
            Column("gpu id", [printable(g.get("gpu_id") or "—") for g in gpus], 3),
            Column("model", [printable(g.get("name") or "—") for g in gpus]),
            Column("health", [printable(health(g)) for g in gpus]),
            Column("util", [util(g) for g in gpus], 1),
        ],
        width=width,
    )
    leases = doc["leases"]

    def ack(lease: dict[str, Any]) -> str:
        if not lease["ack_state"]:
            return "—"
        return str(lease["ack_state"]) + (" ✓" if lease["acked"] else " (owed)")

    render(
        "Leases",
        [
            Column("booking", [printable(x["booking_id"]) for x in leases]),
            Column("gpu", [printable(x["gpu_uuid"]) for x in leases], 2, short_uuid),
            Column("client", [printable(x["client_id"] or "—") for x in leases], 3),
            Column("ends", [printable(x["end_time"]) for x in leases], 1, short_time),
            Column("phase", [printable(x["phase"]) for x in leases]),
            Column("ack", [printable(ack(x)) for x in leases]),
        ],
        caption=None if leases else "no leases",
        width=width,
    )
