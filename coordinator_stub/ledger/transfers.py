"""Balanced transfers between account buckets; the conservation invariant (docs/api.md).

Every subject has three buckets: `balance` (spendable), `escrowed` (held for bookings) and
`staked` (stake principal + rewards). Money enters only by `credit` (admin). Every other change is
a transfer whose legs sum to zero, so at all times

    sum over subjects of (balance + escrowed + staked) == sum of all credits.

Each leg is a single `UPDATE ... SET bucket = bucket + :delta WHERE bucket + :delta >= 0`, whose
row count is checked: a debit can never drive a bucket negative, even when requests race on
PostgreSQL under READ COMMITTED, and nothing is read-modify-written in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, type_coerce, update
from sqlalchemy.orm import Session

from coordinator_stub.core.clock import new_id
from coordinator_stub.core.money import MAX_SUPPLY, ZERO, render
from coordinator_stub.db.engine import insert_or_ignore
from coordinator_stub.db.models import Account, LedgerEntry, Money
from coordinator_stub.errors import PaymentRequiredError, UnprocessableError

BUCKETS = ("balance", "escrowed", "staked")


@dataclass(frozen=True)
class Leg:
    subject: str
    bucket: str
    amount: Decimal  # signed: negative debits the bucket


def ensure_account(session: Session, subject: str, now: datetime) -> None:
    """Create the subject's account if missing (safe when two requests race to create it)."""
    insert_or_ignore(
        session,
        Account,
        {"subject": subject, "balance": ZERO, "escrowed": ZERO, "staked": ZERO, "created_at": now},
        ["subject"],
    )


def credit(session: Session, subject: str, amount: Decimal, *, now: datetime) -> str:
    """Money enters the system (admin credit). Returns the transaction id.

    Refused (422) when it would take everything ever credited past `MAX_SUPPLY`, the bound that
    keeps every balance and every sum of balances exact in a 64-bit column. Two credits racing
    on PostgreSQL could overshoot by one credit at most, which the column still holds (9x room).
    """
    if credited_total(session) + amount > MAX_SUPPLY:
        raise UnprocessableError(
            f"this credit would take the total supply past {render(MAX_SUPPLY)} AITBC"
        )
    ensure_account(session, subject, now)
    return _apply(session, [Leg(subject, "balance", amount)], kind="credit", ref=None, now=now)


def transfer(
    session: Session, legs: Iterable[Leg], *, kind: str, ref: str | None, now: datetime
) -> str:
    """Apply a balanced transfer; raises PaymentRequiredError if a debit would overdraw."""
    legs = [leg for leg in legs if leg.amount != 0]
    total = sum((leg.amount for leg in legs), ZERO)
    if total != 0:
        raise ValueError(f"unbalanced transfer {kind}: legs sum to {total}")
    for leg in legs:
        ensure_account(session, leg.subject, now)
    return _apply(session, legs, kind=kind, ref=ref, now=now)


def _apply(session: Session, legs: list[Leg], *, kind: str, ref: str | None, now: datetime) -> str:
    tx_id = new_id("tx_")
    for leg in legs:
        if leg.bucket not in BUCKETS:
            raise ValueError(f"unknown bucket {leg.bucket!r}")
        column = getattr(Account, leg.bucket)
        result = session.execute(
            update(Account)
            .where(Account.subject == leg.subject, column + leg.amount >= 0)
            .values({leg.bucket: column + leg.amount})
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise PaymentRequiredError(
                f"insufficient {leg.bucket} for {leg.subject}: {render(-leg.amount)} AITBC needed"
            )
        session.add(
            LedgerEntry(
                tx_id=tx_id,
                subject=leg.subject,
                bucket=leg.bucket,
                amount=leg.amount,
                kind=kind,
                ref=ref,
                created_at=now,
            )
        )
    return tx_id


@dataclass(frozen=True)
class Conservation:
    credited: Decimal
    held: Decimal

    @property
    def holds(self) -> bool:
        return self.credited == self.held


def credited_total(session: Session) -> Decimal:
    """Everything ever credited: the money supply."""
    total = session.scalar(
        select(type_coerce(func.coalesce(func.sum(LedgerEntry.amount), 0), Money())).where(
            LedgerEntry.kind == "credit"
        )
    )
    return total or ZERO


def conservation(session: Session) -> Conservation:
    """Sum of credits vs sum of every account's buckets; equal unless money leaked."""
    held = session.scalar(
        select(
            type_coerce(
                func.coalesce(func.sum(Account.balance + Account.escrowed + Account.staked), 0),
                Money(),
            )
        )
    )
    return Conservation(credited=credited_total(session), held=held or ZERO)
