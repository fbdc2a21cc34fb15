"""Admin: issue, list and revoke API keys; credit accounts (the only way money enters)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from coordinator_stub.auth import KeyCache, generate_key, list_keys, revoke_key, store_key
from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import MoneyIn
from coordinator_stub.db.models import Account, ApiKey
from coordinator_stub.deps import AdminDep, DbDep, NowDep
from coordinator_stub.errors import NotFoundError, UnprocessableError
from coordinator_stub.ledger import transfers
from coordinator_stub.routes.accounts import AccountOut, account_out
from coordinator_stub.routes.inputs import Limit, Name, Offset, is_id_shaped

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ApiKeyIn(BaseModel):
    role: Literal["admin", "miner", "client"]
    subject: Name


class ApiKeyOut(BaseModel):
    api_key: str = Field(description="the key itself: shown this once, stored only as a hash")
    key_id: str = Field(description="the key's public name, to list and revoke it by")
    role: str
    subject: str


class ApiKeyInfo(BaseModel):
    """A key as an admin may see it: never the key itself."""

    key_id: str
    role: str
    subject: str
    created_at: str
    last_used_at: str | None = Field(description="to within 10 minutes; null if never used")
    revoked_at: str | None


class RevokedOut(BaseModel):
    status: Literal["revoked"] = "revoked"
    key_id: str
    revoked_at: str


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        role=row.role,
        subject=row.subject,
        created_at=rfc3339(row.created_at) or "",
        last_used_at=rfc3339(row.last_used_at),
        revoked_at=rfc3339(row.revoked_at),
    )


class CreditIn(BaseModel):
    amount: MoneyIn = Field(description="AITBC, a number or decimal string, > 0, ≤ 8 dp")


class CreditOut(AccountOut):
    tx_id: str


@router.post(
    "/api-keys",
    status_code=201,
    responses={409: {"description": "the subject already belongs to another role"}},
)
def create_api_key(body: ApiKeyIn, _admin: AdminDep, db: DbDep, now: NowDep) -> ApiKeyOut:
    """Issue a key bound to (role, subject). The key is shown once; only its hash is stored. A
    subject belongs to one role (a client key for a miner's id is refused)."""
    key = generate_key(body.role)
    with db.write() as session:
        key_id = store_key(session, key=key, role=body.role, subject=body.subject, now=now)
        transfers.ensure_account(session, body.subject, now)
    return ApiKeyOut(api_key=key, key_id=key_id, role=body.role, subject=body.subject)


@router.get("/api-keys")
def list_api_keys(
    _admin: AdminDep,
    db: DbDep,
    subject: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ApiKeyInfo]:
    """Every key's id, role, subject and times, oldest first; never a key."""
    with db.read() as session:
        rows = list_keys(session, subject=subject, limit=limit, offset=offset)
        return [_info(row) for row in rows]


@router.delete("/api-keys/{key_id}", responses={404: {"description": "no such key"}})
def revoke_api_key(
    key_id: Annotated[str, Path(max_length=32)],
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    now: NowDep,
) -> RevokedOut:
    """Revoke a key: refused at once by this process, and by every other process sharing the
    database within `key_cache_ttl_s` (2 s by default). Revoking twice keeps the first time."""
    if not is_id_shaped(key_id):
        raise NotFoundError(f"API key {key_id} not found")
    with db.write() as session:
        row = revoke_key(session, key_id=key_id, now=now)
        key_hash, revoked_at = row.key_hash, row.revoked_at
    cache: KeyCache = request.app.state.key_cache
    cache.forget(key_hash)
    return RevokedOut(key_id=key_id, revoked_at=rfc3339(revoked_at) or "")


@router.get("/accounts")
def list_accounts(
    _admin: AdminDep, db: DbDep, limit: Limit = 100, offset: Offset = 0
) -> list[AccountOut]:
    """Every account, by subject (what the admin console lists)."""
    with db.read() as session:
        rows = session.scalars(
            select(Account).order_by(Account.subject).limit(limit).offset(offset)
        ).all()
        return [account_out(a, subject=a.subject, role=None) for a in rows]


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
