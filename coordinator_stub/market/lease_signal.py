"""The signal every change of a miner's desired lease set sends: version bump plus wake-up.

Every code path that changes a miner's desired lease set (book, release, expiry, forced delete,
fault, rejection) calls `lease_set_changed()` inside its own transaction, so the version bump
commits — or rolls back — with the change itself. It lives in the market, beside the bookings
that send it, so the miner protocol (`coordinator_stub.miners`) can build on the market and not
the other way round; `miners.wakeups` turns the signal into long-poll answers.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coordinator_stub.db.models import Miner

NOTIFY_CHANNEL = "aitbc_leases"
CHANGED_MINERS = "aitbc_lease_changed_miners"  # key in Session.info, read after commit


def lease_set_changed(session: Session, miner_id: str) -> None:
    """Bump the miner's `lease_version` and queue the wake-up of its long polls."""
    session.execute(
        update(Miner).where(Miner.id == miner_id).values(lease_version=Miner.lease_version + 1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit to every LISTENing coordinator process; dropped on rollback.
        session.execute(select(func.pg_notify(NOTIFY_CHANNEL, miner_id)))
    session.info.setdefault(CHANGED_MINERS, set()).add(miner_id)
