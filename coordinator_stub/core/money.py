"""AITBC amounts: `Decimal`, 8 fractional digits, half-even; JSON strings out.

In the database an amount is an integer count of 1e-8 units, so SQLite and PostgreSQL both do
exact arithmetic and an `UPDATE ... SET balance = balance - :x WHERE balance >= :x` stays atomic.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

QUANTUM = Decimal("0.00000001")
UNITS_PER_COIN = 10**8
ZERO = Decimal("0.00000000")
# The most AITBC that may ever exist (all credits together). 1e10 AITBC is 1e18 units, so every
# amount, balance and sum of balances fits a signed 64-bit integer (9.2e18) with room to spare,
# on SQLite too, whose integers silently turn into lossy floats beyond that.
MAX_SUPPLY = Decimal("10000000000")


def quantize(value: Decimal) -> Decimal:
    return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def to_units(value: Decimal) -> int:
    return int(quantize(value) * UNITS_PER_COIN)


def from_units(units: int) -> Decimal:
    return quantize(Decimal(units) / UNITS_PER_COIN)


def render(value: Decimal) -> str:
    return f"{quantize(value):.8f}"


def parse_amount(value: Any) -> Decimal:
    """Accept a JSON number or string; reject bool, NaN, infinities, negatives, > 8 dp."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError("an amount must be a number or a decimal string")  # noqa: TRY004 (pydantic wants ValueError)
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise ValueError("an amount must be a decimal number") from exc
    if not amount.is_finite():
        raise ValueError("an amount must be finite")
    if amount < 0:
        raise ValueError("an amount must not be negative")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        raise ValueError("an amount has at most 8 fractional digits")
    if amount > MAX_SUPPLY:
        raise ValueError(f"an amount must not exceed {MAX_SUPPLY} (the total supply cap)")
    return quantize(amount)


# Request field: number or string in, Decimal inside. Response field: Decimal inside, string out.
MoneyIn = Annotated[Decimal, BeforeValidator(parse_amount)]
MoneyOut = Annotated[Decimal, PlainSerializer(render, return_type=str)]
