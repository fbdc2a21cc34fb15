"""API keys: SHA-256 at rest, constant-time comparison, one role and subject per key.

A key is stored only as its hash, named by a public `key_id`, and refused once `revoked_at` is
set. Each process keeps the keys it has seen and asks the database which were revoked lately
(`KeyCache`, `watch_revocations`): a revocation takes effect at once in the process that made
it and within `key_cache_ttl_s` (2 s by default) in every other process sharing the database.
A subject belongs to one role: a client key for a miner's id would spend that miner's earnings.
Who may call what is in docs/renter-quickstart.md (Conventions) and docs/api.md.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from coordinator_stub.config import SUBJECT_PATTERN
from coordinator_stub.core.clock import new_id
from coordinator_stub.db.engine import Database, insert_or_ignore
from coordinator_stub.db.models import ApiKey
from coordinator_stub.errors import ConflictError, NotFoundError, UnprocessableError

log = logging.getLogger("coordinator.auth")

ROLES = ("admin", "miner", "client")
# Letters, digits and . _ @ -, starting with a letter or digit: safe in a log line, a shell
# variable, a URL path and a file name alike (the pattern lives in config, bootstrap keys use it).
_SUBJECT = re.compile(SUBJECT_PATTERN)
LAST_USED_GRANULARITY = timedelta(minutes=10)  # at most one write per key per 10 minutes


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's role and the subject (miner id or client id) it is bound to."""

    role: str
    subject: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key(role: str) -> str:
    return f"{role}_{secrets.token_urlsafe(32)}"


def _check_subject(subject: str) -> None:
    """A subject is 1 to 128 of letters, digits and `. _ @ -`, starting with a letter or digit."""
    if _SUBJECT.fullmatch(subject) is None:
        raise UnprocessableError(
            "a subject is 1 to 128 letters, digits and . _ @ -, starting with a letter or digit"
        )


def _check_one_role(session: Session, *, subject: str, role: str) -> None:
    """Refuse a key for a subject that already holds keys of another role (409)."""
    other = session.scalar(
        select(ApiKey.role).where(ApiKey.subject == subject, ApiKey.role != role).limit(1)
    )
    if other is not None:
        raise ConflictError(
            f"subject {subject!r} already belongs to the {other} role: one subject, one role"
        )


def store_key(session: Session, *, key: str, role: str, subject: str, now: datetime) -> str:
    """Store a key's hash under a new key id; returns the key id (the existing one when the key
    was stored before: bootstrap is idempotent). Every way a key enters — bootstrap, the admin
    API, `aitbc-coordinator keys` — comes here, so the subject rules hold for all of them:
    a safe name (422) that belongs to one role only (409)."""
    _check_subject(subject)
    _check_one_role(session, subject=subject, role=role)
    key_hash = hash_key(key)
    insert_or_ignore(
        session,
        ApiKey,
        {
            "key_hash": key_hash,
            "key_id": new_id("key_"),
            "role": role,
            "subject": subject,
            "created_at": now,
        },
        ["key_hash"],
    )
    key_id: str = session.scalars(select(ApiKey.key_id).where(ApiKey.key_hash == key_hash)).one()
    return key_id


def list_keys(
    session: Session, *, subject: str | None = None, limit: int | None = None, offset: int = 0
) -> list[ApiKey]:
    """Keys oldest first, optionally one subject's (the rows: hashes and ids, never keys)."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id).limit(limit).offset(offset)
    if subject is not None:
        query = query.where(ApiKey.subject == subject)
    return list(session.scalars(query))


def revoke_key(session: Session, *, key_id: str, now: datetime) -> ApiKey:
    """Mark a key revoked (idempotent: a second revocation keeps the first time)."""
    row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if row is None:
        raise NotFoundError(f"API key {key_id} not found")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return row


@dataclass(slots=True)
class _Seen:
    principal: Principal
    until: float  # time.monotonic() after which the database is asked again


# A trusted key is re-read from the database after this long even if nothing revoked it.
KEEP_S = 600.0
# `drop_revoked` asks for revocations this much before its previous question: the revoking
# process's clock (the CLI's, another coordinator's) may be behind this one's.
REVOKED_CLOCK_MARGIN = timedelta(minutes=5)


class KeyCache:
    """Valid keys seen lately, by hash; unknown keys are always looked up.

    A fleet's heartbeats come every 10 s from each host: re-reading each key after `ttl_s`
    (2 s) would cost every heartbeat a database lookup. Instead every process asks, every
    `ttl_s / 2`, which keys were revoked since it last asked (`drop_revoked`, one indexed
    query) and forgets those; the rest stay trusted for `KEEP_S`. Trust lapses when that
    question has not been answered within `ttl_s` (the database is down, the watch stopped):
    every key is then looked up again, so a revoked key is refused by every process within
    `ttl_s` whatever happens. `ttl_s` = 0 trusts nothing. `clock` is time.monotonic (tests
    pass their own).
    """

    def __init__(self, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._known: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self.ttl_s = ttl_s
        self._clock = clock
        self._trusted_until = float("-inf")  # set by each answered drop_revoked
        self._asked_since: datetime | None = None

    def peek(self, key: str) -> Principal | None:
        """The key's principal if it was seen within the TTL; never touches the database."""
        key_hash = hash_key(key)
        with self._lock:
            seen = self._known.get(key_hash)
            if seen is None:
                return None
            now = self._clock()
            if now > self._trusted_until:
                return None  # revocations unchecked lately: ask the database (kept for later)
            if seen.until < now:
                del self._known[key_hash]
                return None
            return seen.principal

    def forget(self, key_hash: str) -> None:
        """Drop a key at once (this process revoked it)."""
        with self._lock:
            self._known.pop(key_hash, None)

    def lookup(self, session: Session, key: str) -> tuple[Principal | None, ApiKey | None]:
        """(principal, row) of a valid key from the database, remembered for `ttl_s`; (None,
        None) for an unknown or revoked key. Callers `peek` first: this always asks."""
        key_hash = hash_key(key)
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()
        if row is None or row.revoked_at is not None:
            return None, None
        if not hmac.compare_digest(row.key_hash, key_hash):
            return None, None
        principal = Principal(role=row.role, subject=row.subject)
        with self._lock:
            self._known[key_hash] = _Seen(principal, self._clock() + KEEP_S)
        return principal, row

    def drop_revoked(self, session: Session, now: datetime) -> int:
        """Forget the keys revoked since the last call (the first: in the last minutes) and
        trust the rest for another `ttl_s`; returns how many were forgotten."""
        asked_at = self._clock()
        since = self._asked_since or now
        revoked = session.scalars(
            select(ApiKey.key_hash).where(ApiKey.revoked_at >= since - REVOKED_CLOCK_MARGIN)
        ).all()
        with self._lock:
            dropped = sum(self._known.pop(key_hash, None) is not None for key_hash in revoked)
            self._trusted_until = asked_at + self.ttl_s
        self._asked_since = now
        return dropped


def watch_revocations(
    cache: KeyCache, db: Database, clock: Callable[[], datetime], stop: threading.Event
) -> None:
    """Run `cache.drop_revoked` every `ttl_s / 2` until `stop` (a thread of the app's)."""
    if cache.ttl_s <= 0:
        return  # nothing is trusted, so nothing needs forgetting
    while True:
        try:
            with db.read() as session:
                cache.drop_revoked(session, clock())
        except SQLAlchemyError:
            # Trust lapses by itself after ttl_s: every key is looked up until this answers.
            log.warning("key_revocations_unchecked", exc_info=True)
        if stop.wait(cache.ttl_s / 2):
            return


def needs_use_noted(last_used_at: datetime | None, now: datetime) -> bool:
    """True when a key's recorded last use is missing or older than 10 minutes."""
    return last_used_at is None or now - last_used_at >= LAST_USED_GRANULARITY


def note_use(session: Session, *, key_hash: str, now: datetime) -> None:
    """Record that a key was used now; callers write only when `needs_use_noted`, so a busy key
    costs one write per 10 minutes, not one per call."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.key_hash == key_hash)
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
