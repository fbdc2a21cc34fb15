"""The booking state machine and settlement (filled in by the marketplace issue)."""

from __future__ import annotations

from datetime import datetime

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db import Database


def sweep(db: Database, settings: CoordinatorSettings, now: datetime) -> int:
    """Settle bookings past their end_time. Returns how many were settled."""
    return 0
