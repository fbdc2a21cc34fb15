"""API keys: SHA-256 at rest, constant-time comparison, one role and subject per key.

Who may call what is in docs/renter-quickstart.md (Conventions) and docs/api.md.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator_stub.db.engine import insert_or_ignore
from coordinator_stub.db.models import ApiKey

ROLES = ("admin", "miner", "client")


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


def store_key(session: Session, *, key: str, role: str, subject: str, now: datetime) -> bool:
    """Store a key's hash; returns False when it already existed (bootstrap is idempotent)."""
    return insert_or_ignore(
        session,
        ApiKey,
        {"key_hash": hash_key(key), "role": role, "subject": subject, "created_at": now},
        ["key_hash"],
    )


class KeyCache:
    """Valid keys seen before, by hash. Keys are never revoked in this version, so a positive
    answer can be kept; unknown keys are always looked up again."""

    def __init__(self) -> None:
        self._known: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def peek(self, key: str) -> Principal | None:
        """The key's principal if it was seen before; never touches the database."""
        key_hash = hash_key(key)
        with self._lock:
            return self._known.get(key_hash)

    def lookup(self, session: Session, key: str) -> Principal | None:
        key_hash = hash_key(key)
        with self._lock:
            cached = self._known.get(key_hash)
        if cached is not None:
            return cached
        row = session.execute(
            select(ApiKey.key_hash, ApiKey.role, ApiKey.subject).where(ApiKey.key_hash == key_hash)
        ).first()
        if row is None or not hmac.compare_digest(row.key_hash, key_hash):
            return None
        principal = Principal(role=row.role, subject=row.subject)
        with self._lock:
            self._known[key_hash] = principal
        return principal
