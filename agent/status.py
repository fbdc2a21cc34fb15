"""What the running agent shows of itself: the STATUS= line, status.json, the metrics snapshot.

All three are views of the daemon's state, read without changing it: STATUS= goes to systemd
(sent by the main loop when it changed), status.json to `aitbc-agent status` (written after each
heartbeat tick; not durable, only a view), the snapshot to the Prometheus collector when scraped.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.errors import AgentError
from agent.leases import is_unhealthy
from agent.log import get_logger
from agent.state import utc_now, write_atomic
from agent.views import metrics_rows, status_rows

if TYPE_CHECKING:
    from agent.daemon import Daemon

log = get_logger("agent.daemon")  # the daemon's events, under the name operators filter by

STATUS_FILE = "status.json"


class StatusReporter:
    """One daemon's status line, status file and metrics snapshot."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.last_line = ""  # the text of the last STATUS= handed out
        self._write_failed_logged = False

    def line(self, *, force: bool = False) -> str:
        """`STATUS=...` when it changed since the last one sent (or `force`), else ""."""
        d = self._d
        active = d.worker.counts()[0] if d.worker is not None else 0
        unhealthy = sum(1 for s in d.samples.values() if is_unhealthy(s.health.status.value))
        text = f"{len(d.units)} GPUs, {active} leased"
        if unhealthy:
            text += f", {unhealthy} unhealthy"
        text += f", coordinator {d.health.state}"
        if d.worker is not None and d.worker.state_error:
            text += ", state file not writable"
        if text == self.last_line and not force:
            return ""
        self.last_line = text
        return f"STATUS={text}"

    def write(self) -> None:
        """Write status.json for `aitbc-agent status` (not durable: it is only a view)."""
        d = self._d
        with d.lock:
            gpus = status_rows(d.units, d.samples, d.state.gpu_ids)
        last_heartbeat_at = d.heartbeat.last_heartbeat_at
        doc = {
            "pid": os.getpid(),
            "version": __version__,
            "instance_id": d.instance_id,
            "written_at": utc_now().isoformat(),
            "coordinator_url": d.settings.coordinator.url,
            "coordinator_state": d.health.state,
            "registered": d.registered_event.is_set(),
            "last_heartbeat_at": None
            if last_heartbeat_at is None
            else last_heartbeat_at.isoformat(),
            "heartbeat_interval_s": d.interval_s,
            "gpus": gpus,
        }
        error: AgentError | None = None
        try:
            write_atomic(
                d.store.state_dir / STATUS_FILE, json.dumps(doc, indent=1).encode(), durable=False
            )
        except AgentError as exc:
            error = exc
        if error is not None and not self._write_failed_logged:
            self._write_failed_logged = True
            log.warning("status_write_failed", error=str(error))

    def metrics_snapshot(self) -> Any:
        """The numbers `agent.metrics` exports, read when Prometheus scrapes."""
        from agent.metrics import Snapshot

        d = self._d
        active, owed = d.worker.counts() if d.worker is not None else (0, 0)
        # The worker's hook threads count under this lock too: copy under it.
        with d.lock:
            gpus = metrics_rows(d.gpus, d.samples)
            counters = dict(d.counters)
            if d.worker is not None:
                counters.update(d.worker.counters)
        return Snapshot(
            gpus=gpus,
            leases_active=active,
            acks_owed=owed,
            coordinator_up=d.health.up,
            counters=counters,
        )
