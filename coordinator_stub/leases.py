"""Desired leases of a miner, lease versions and long-poll wake-ups (SPEC §3.11).

Who calls what: every code path that changes a miner's desired lease set (book, release, expiry,
forced delete, fault, rejection) calls `lease_set_changed()` inside its own transaction, so the
version bump commits — or rolls back — with the change itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from coordinator_stub.models import Miner


def lease_set_changed(session: Session, miner_id: str) -> None:
    """Bump the miner's `lease_version` so its agent's long poll wakes up."""
    session.execute(
        update(Miner).where(Miner.id == miner_id).values(lease_version=Miner.lease_version + 1)
    )


def desired_leases(session: Session, miner_id: str, now: datetime) -> list[dict[str, Any]]:
    """The leases the miner's agent should hold now (empty until the lease protocol lands)."""
    return []
