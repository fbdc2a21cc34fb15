"""The caller's own account and ledger entries (docs/api.md)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import ZERO, MoneyOut
from coordinator_stub.db.models import Account, LedgerEntry
from coordinator_stub.deps import DbDep, PrincipalDep
from coordinator_stub.routes.inputs import Limit, Offset

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


class AccountOut(BaseModel):
    subject: str
    role: str | None
    balance: MoneyOut
    escrowed: MoneyOut
    staked: MoneyOut


class TransactionOut(BaseModel):
    tx_id: str
    kind: str
    bucket: str
    amount: MoneyOut
    ref: str | None
    created_at: str


def account_out(account: Account | None, *, subject: str, role: str | None) -> AccountOut:
    """An account as the API shows it; a subject that never held money shows zeros."""
    if account is None:
        return AccountOut(subject=subject, role=role, balance=ZERO, escrowed=ZERO, staked=ZERO)
    return AccountOut(
        subject=account.subject,
        role=role,
        balance=account.balance,
        escrowed=account.escrowed,
        staked=account.staked,
    )


@router.get("/me")
def get_my_account(principal: PrincipalDep, db: DbDep) -> AccountOut:
    with db.read() as session:
        account = session.get(Account, principal.subject)
        return account_out(account, subject=principal.subject, role=principal.role)


@router.get("/me/transactions")
def list_my_transactions(
    principal: PrincipalDep,
    db: DbDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[TransactionOut]:
    with db.read() as session:
        rows = session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.subject == principal.subject)
            .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return [
            TransactionOut(
                tx_id=row.tx_id,
                kind=row.kind,
                bucket=row.bucket,
                amount=row.amount,
                ref=row.ref,
                created_at=rfc3339(row.created_at) or "",
            )
            for row in rows
        ]
