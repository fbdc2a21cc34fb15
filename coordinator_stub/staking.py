"""Stakes, pools and rewards (SPEC §3.8). Filled in by the staking issue."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from coordinator_stub.money import ZERO


def distribute_rewards(
    session: Session, *, miner_id: str, amount: Decimal, tx_ref: str, now: datetime
) -> Decimal:
    """Credit `amount` to the miner's active stakes pro rata; returns how much was distributed
    (the caller keeps the rest with the miner). Until staking lands: nothing is distributed."""
    return ZERO
