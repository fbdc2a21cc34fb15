"""Admin: issue API keys, credit accounts (the only way money enters)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from coordinator_stub.auth import generate_key, store_key
from coordinator_stub.core.money import MoneyIn
from coordinator_stub.db.models import Account
from coordinator_stub.deps import AdminDep, DbDep, NowDep
from coordinator_stub.errors import UnprocessableError
from coordinator_stub.ledger import transfers
from coordinator_stub.routes.accounts import AccountOut, account_out
from coordinator_stub.routes.inputs import Name

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ApiKeyIn(BaseModel):
    role: Literal["admin", "miner", "client"]
    subject: Name


class ApiKeyOut(BaseModel):
    api_key: str
    role: str
    subject: str


class CreditIn(BaseModel):
    amount: MoneyIn = Field(description="AITBC, a number or decimal string, > 0, ≤ 8 dp")


class CreditOut(AccountOut):
    tx_id: str


@router.post("/api-keys", status_code=201)
def create_api_key(body: ApiKeyIn, _admin: AdminDep, db: DbDep, now: NowDep) -> ApiKeyOut:
    """Issue a key bound to (role, subject). The key is shown once; only its hash is stored."""
    key = generate_key(body.role)
    with db.write() as session:
        store_key(session, key=key, role=body.role, subject=body.subject, now=now)
        transfers.ensure_account(session, body.subject, now)
    return ApiKeyOut(api_key=key, role=body.role, subject=body.subject)


@router.post("/accounts/{subject}/credit")
def credit_account(
    subject: Annotated[Name, Path()], body: CreditIn, _admin: AdminDep, db: DbDep, now: NowDep
) -> CreditOut:
    if body.amount <= 0:
        raise UnprocessableError("amount must be greater than 0")
    with db.write() as session:
        tx_id = transfers.credit(session, subject, body.amount, now=now)
        out = account_out(session.get(Account, subject), subject=subject, role=None)
    return CreditOut(**out.model_dump(), tx_id=tx_id)
