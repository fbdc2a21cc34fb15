"""Start-up and upkeep wiring: bootstrap keys, and the list of sweep tasks the sweeper runs."""

from __future__ import annotations

from datetime import datetime

from coordinator_stub.auth import store_key
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db import Database
from coordinator_stub.ledger import ensure_account
from coordinator_stub.sweeper import SweepFn


def bootstrap(db: Database, settings: CoordinatorSettings, now: datetime) -> None:
    """Create the bootstrap keys from settings (idempotent) and their subjects' accounts."""
    for entry in settings.parsed_bootstrap_keys():
        with db.write() as session:
            store_key(session, key=entry.key, role=entry.role, subject=entry.subject, now=now)
            ensure_account(session, entry.subject, now)


def sweep_tasks() -> list[SweepFn]:
    """Everything time alone can end: expired bookings, provider faults."""
    from coordinator_stub import bookings, faults

    # Expiry first: a booking that has run out completes rather than failing on a late fault.
    return [bookings.sweep, faults.ProviderFaultSweep()]
