"""FastAPI dependencies: settings, database, clock, and who is calling (the API key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from coordinator_stub.auth import KeyCache, Principal, needs_use_noted, note_use
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.db.engine import Database
from coordinator_stub.errors import ForbiddenError, UnauthorizedError


async def get_settings(request: Request) -> CoordinatorSettings:
    settings: CoordinatorSettings = request.app.state.settings
    return settings


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_now(request: Request) -> datetime:
    """The request's one 'now' (the app's clock; tests may install a fake one)."""
    now: datetime = request.app.state.clock()
    return now


SettingsDep = Annotated[CoordinatorSettings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
NowDep = Annotated[datetime, Depends(get_now)]


def _presented_key(request: Request) -> str:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return ""


async def get_optional_principal(request: Request, db: DbDep) -> Principal | None:
    """The caller, or None when no key (or an empty one) was sent. A bad key is a 401.

    The dependencies here are `async def`: a sync dependency costs a worker-thread round trip
    per request each, which is most of a heartbeat's CPU. Only a key not seen before goes to
    the database (in the threadpool).
    """
    key = _presented_key(request)
    if not key:
        return None
    cache: KeyCache = request.app.state.key_cache
    principal = cache.peek(key)
    if principal is None:
        now: datetime = request.app.state.clock()
        principal = await run_in_threadpool(_lookup_key, cache, db, key, now)
    if principal is None:
        _refused(request, "unknown or revoked key")
        raise UnauthorizedError("invalid API key")
    if principal.role == "miner":
        # On every route, not only the miner's own: a miner key speaks for its bound id only.
        claimed = request.headers.get("x-miner-id")
        if claimed and claimed not in ("default", principal.subject):
            _refused(request, "X-Miner-ID does not match the key's miner", principal)
            raise ForbiddenError("X-Miner-ID does not match the miner this key is bound to")
    request.state.caller = principal  # for the access log (routes/metrics.py)
    return principal


def _refused(request: Request, reason: str, principal: Principal | None = None) -> None:
    """Log a refused key: who sent it and where, never the key itself."""
    events.emit(
        "api_key_refused",
        level="warning",
        reason=reason,
        method=request.method,
        path=request.url.path[:256],  # what the caller sent: bounded, JSON-escaped by the log
        client=request.client.host if request.client else None,
        subject=None if principal is None else principal.subject,
        claimed_miner_id=(request.headers.get("x-miner-id") or "")[:128] or None,
    )


def _lookup_key(cache: KeyCache, db: Database, key: str, now: datetime) -> Principal | None:
    """Ask the database (the cache had no fresh answer); note the key's use, coarsely."""
    with db.read() as session:
        principal, row = cache.lookup(session, key)
    if row is not None and needs_use_noted(row.last_used_at, now):
        with db.write() as session:
            note_use(session, key_hash=row.key_hash, now=now)
    return principal


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]


async def get_principal(principal: OptionalPrincipalDep) -> Principal:
    if principal is None:
        raise UnauthorizedError("an API key is required (X-Api-Key header)")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def _principal_in_role(request: Request, db: Database, roles: tuple[str, ...]) -> Principal:
    """401 without a valid key, 403 for a role not in `roles` (admin may do anything)."""
    principal = await get_principal(await get_optional_principal(request, db))
    if principal.role not in roles and not principal.is_admin:
        raise ForbiddenError(f"this call needs a {' or '.join(roles)} key")
    return principal


def require_role(*roles: str) -> object:
    """A dependency admitting the given roles; admin may do anything a miner or client may.

    One flat dependency (it calls the principal functions itself): each level of FastAPI
    sub-dependencies costs real time on hot paths such as the heartbeat.
    """

    async def dependency(request: Request, db: DbDep) -> Principal:
        return await _principal_in_role(request, db, roles)

    return Depends(dependency)


async def get_miner(
    request: Request, x_miner_id: Annotated[str | None, Header(max_length=128)] = None
) -> Principal:
    """The acting miner. For a miner key, `X-Miner-ID` absent or `default` means the bound id
    (any other value was refused with the key). An admin acts as the miner named in it.

    No sub-dependencies (the database comes from the app's state): FastAPI's dependency
    solving costs more than the rest of a heartbeat's routing.
    """
    principal = await _principal_in_role(request, request.app.state.db, ("miner",))
    if principal.is_admin and x_miner_id and x_miner_id != "default":
        return Principal(role="miner", subject=x_miner_id)
    return principal


AdminDep = Annotated[Principal, require_role("admin")]
ClientDep = Annotated[Principal, require_role("client")]
MinerDep = Annotated[Principal, Depends(get_miner)]
