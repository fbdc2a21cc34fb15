"""The one price of a GPU now: gathers market inputs from the database for `pricing`.

Booking and the quote endpoint both call `quote_gpu`, so they agree to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.models import Gpu
from coordinator_stub.money import quantize


@dataclass(frozen=True)
class Quote:
    price_per_hour: Decimal  # the dynamic price a booking pays per hour
    base_price: Decimal  # the miner's list price
    multiplier: Decimal
    confidence_score: float
    factors: dict[str, Any] = field(default_factory=dict)

    def total_cost(self, duration_hours: Decimal) -> Decimal:
        return quantize(duration_hours * self.price_per_hour)


def quote_gpu(session: Session, gpu: Gpu, *, now: datetime, settings: CoordinatorSettings) -> Quote:
    """List price until the pricing engine lands (SPEC §3.9 replaces the internals only)."""
    return Quote(
        price_per_hour=gpu.price_per_hour,
        base_price=gpu.price_per_hour,
        multiplier=Decimal(1),
        confidence_score=0.3,
        factors={"engine": "list_price"},
    )
