"""Time and ids: UTC clock, RFC 3339 rendering, CSPRNG ids (docs/renter-quickstart.md)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """`2026-11-26T03:56:14.838070Z` (always microseconds, always Z)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(prefix: str) -> str:
    """A prefix plus 16 lowercase hex digits from the CSPRNG (`gpu_`, `bk_`, ...)."""
    return f"{prefix}{secrets.token_hex(8)}"
