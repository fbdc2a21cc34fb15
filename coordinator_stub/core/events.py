"""The coordinator's events: one JSON log line each, and a count per event for `/metrics`.

`emit` logs now. `emit_on_commit` logs once the caller's write transaction has committed, so
a booking rolled back (a lost race, a failed transfer) never shows up in the log as made:
the event waits in `session.info` and `Database` publishes it from its after-commit hook.

Counts are per process (Prometheus sums them over the processes it scrapes). Every event
this module may log is named in `EVENTS` with the sentence `/metrics` and docs/metrics.md
give it; an unknown name is a bug and raises.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.orm import Session

from aitbc_common.logs import get_logger
from coordinator_stub.core.money import render

Level = Literal["debug", "info", "warning", "error"]

EVENTS: Mapping[str, str] = {
    "miner_registered": "A miner registered (or registered again) its GPUs",
    "gpu_registered": "A miner registered a GPU (new) or registered it again (same uuid)",
    "miner_deregistered": "A miner left the market",
    "miner_online": "A miner's heartbeat arrived after it had been offline (or for the first time)",
    "miner_offline": "A miner's last heartbeat grew older than offline_after_s",
    "gpu_attested": "A GPU's attestation was judged (verified or not, with the reason)",
    "api_key_refused": "A request carried an unknown, revoked or mismatched API key",
    "booking_created": "A GPU was booked",
    "booking_ended": "A booking ended (released, completed, cancelled or failed)",
    "booking_failed_provider_fault": "A booking failed because its GPU stayed offline",
}

_QUEUE = "aitbc_events"
_log = get_logger("coordinator.events")
_lock = threading.Lock()
_counts: collections.Counter[str] = collections.Counter()


def emit(event: str, *, level: Level = "info", **fields: Any) -> None:
    """Log `event` with `fields` now and count it. Decimals are logged in plain notation."""
    if event not in EVENTS:
        raise ValueError(f"unknown coordinator event {event!r}")
    with _lock:
        _counts[event] += 1
    plain = {k: render(v) if isinstance(v, Decimal) else v for k, v in fields.items()}
    getattr(_log, level)(event, **plain)


def emit_on_commit(session: Session, event: str, *, level: Level = "info", **fields: Any) -> None:
    """Log `event` once `session`'s transaction commits (never, if it rolls back)."""
    if event not in EVENTS:
        raise ValueError(f"unknown coordinator event {event!r}")
    session.info.setdefault(_QUEUE, []).append((event, level, fields))


def publish_committed(session: Session) -> None:
    """The after-commit hook: log what the transaction queued."""
    for event, level, fields in session.info.pop(_QUEUE, ()):
        emit(event, level=level, **fields)


def counts() -> dict[str, int]:
    """Events logged by this process so far, every known event included (0 when none)."""
    with _lock:
        return {event: _counts[event] for event in EVENTS}
