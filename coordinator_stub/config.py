"""Coordinator settings: `COORDINATOR_*` environment variables, overridable by `serve` flags."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = ("admin", "miner", "client")
BOOTSTRAP_KEYS_CREDENTIAL = "bootstrap-keys"  # systemd LoadCredential= name
MIN_BOOTSTRAP_KEY_CHARS = 32  # a guessable bootstrap key is an open door: refuse short ones
# The subject rule of coordinator_stub.auth (config imports nothing of the coordinator).
SUBJECT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}"


class BootstrapKey:
    """One `role:subject:key` entry of COORDINATOR_BOOTSTRAP_KEYS."""

    __slots__ = ("key", "role", "subject")

    def __init__(self, role: str, subject: str, key: str) -> None:
        self.role = role
        self.subject = subject
        self.key = key

    def __repr__(self) -> str:  # never print the key itself
        return f"BootstrapKey(role={self.role!r}, subject={self.subject!r}, key=***)"


def default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'coordinator.db'}"


class CoordinatorSettings(BaseSettings):
    """Every knob of the coordinator (docs/configuration.md is rendered from these fields)."""

    model_config = SettingsConfigDict(env_prefix="COORDINATOR_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(
        default=8000, ge=0, le=65535, description="Port `serve` listens on (the AITBC client's)."
    )
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL of the database: `sqlite:///PATH` (default: coordinator.db "
        "in the working directory) or `postgresql+psycopg://USER:PASSWORD@HOST/DB`.",
    )
    bootstrap_keys: SecretStr = Field(  # secrets: never in a repr or an error message
        default=SecretStr(""),
        description="API keys created at start if missing, comma-separated `role:subject:key` "
        "(`admin:ops:K1,miner:host-01:K2`). Under systemd, prefer the credential "
        "`bootstrap-keys` (LoadCredential=), one entry a line.",
    )
    heartbeat_interval_s: float = Field(
        default=10.0, gt=0, description="Heartbeat interval the coordinator asks agents for."
    )
    offline_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A miner silent this long shows its GPUs `offline` (not bookable).",
    )
    lease_fault_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="A booked GPU offline this long fails its booking, refunding the unused "
        "time in full.",
    )
    refund_ratio: Decimal = Field(
        default=Decimal("0.5"),
        ge=0,
        le=1,
        description="Share of the unused time's cost a renter gets back on an early release.",
    )
    stakers_share: Decimal = Field(
        default=Decimal("0.05"),
        ge=0,
        le=1,
        description="Share of a miner's revenue from each booking split over its active stakes.",
    )
    min_booking_s: float = Field(
        default=60.0,
        ge=0,
        description="Shortest booking a renter may make; shorter ones are refused (422), so no "
        "one can buy demand or review rights for next to nothing.",
    )
    min_charge: Decimal = Field(
        default=Decimal("0.001"),
        ge=0,
        description="Least a booking costs, in AITBC, whatever its price and duration.",
    )
    review_min_run_s: float = Field(
        default=600.0,
        ge=0,
        description="A booking gives its renter the right to review the GPU once it has run "
        "this long, or once it completed.",
    )
    attestation_required: Literal["off", "not_failed", "verified"] = Field(
        default="not_failed",
        description="Which GPUs may be booked: `not_failed` refuses a GPU whose latest "
        "attestation failed, `verified` also one never attested, `off` attestation never "
        "refuses a booking.",
    )
    attest_fill_fraction: float = Field(
        default=0.9,
        gt=0.05,
        le=0.98,
        description="Share of a GPU's memory its attestation fills and probes.",
    )
    attest_positions: int = Field(
        default=64, ge=8, le=4096, description="Words an attestation reads back after the fill."
    )
    attest_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long an attestation challenge stays open (and its GPU unbookable).",
    )
    unbonding_period_s: float = Field(
        default=604800.0, ge=0, description="Wait between unbonding a stake and completing it."
    )
    min_stake: Decimal = Field(
        default=Decimal("100"), ge=0, description="Smallest stake, in AITBC."
    )
    # Market-balance pricing: m = clamp(1 + k*(u - u_target) + k_d*d, m_min, m_max).
    pricing_k: Decimal = Field(
        default=Decimal("1"), ge=0, description="Pricing: weight of utilisation above target."
    )
    pricing_u_target: Decimal = Field(
        default=Decimal("0.6"),
        ge=0,
        le=1,
        description="Pricing: the utilisation (booked / online) at which the price is the list "
        "price, before demand.",
    )
    pricing_k_d: Decimal = Field(
        default=Decimal("0.1"),
        ge=0,
        description="Pricing: weight of demand (bookings in 24 h per online GPU).",
    )
    pricing_m_min: Decimal = Field(
        default=Decimal("0.8"), gt=0, description="Pricing: lowest multiplier of the list price."
    )
    pricing_m_max: Decimal = Field(
        default=Decimal("2.0"), gt=0, description="Pricing: highest multiplier of the list price."
    )
    sweep_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often expired bookings and provider faults are settled.",
    )
    lease_poll_interval_s: float = Field(
        default=0.2,
        gt=0,
        description="SQLite only: how often a lease long poll looks for changes made by other "
        "processes (PostgreSQL is woken by LISTEN/NOTIFY).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one is answered 413 before it is "
        "read, parsed or authenticated.",
    )
    key_cache_ttl_s: float = Field(
        default=2.0,
        ge=0,
        description="A revoked key is refused by every process within this time (at once by "
        "the one that revoked it): each process asks which keys were revoked every half of it.",
    )
    max_lease_polls_per_miner: int = Field(
        default=4,
        ge=1,
        description="Lease long polls one miner may hold open; a newer one answers the oldest "
        "at once (an agent holds one), so one booking never wakes hundreds.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A connection that has not sent a request's headers within this is closed.",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A request whose body has not arrived within this is answered 408.",
    )
    max_connections: int = Field(
        default=2048,
        ge=1,
        description="Open connections and requests at most; past it new requests get 503.",
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Database connections kept open per process."
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info",
        description="The least important log lines written: debug, info, warning, error, critical.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="Log lines as JSON (one object per line, for journald and jq) or console "
        "text; `auto` writes console text on a terminal and JSON anywhere else.",
    )
    access_log: bool = Field(
        default=True,
        description="One log line per HTTP request: method, route, status, duration and the "
        "caller's role and subject (never the key). Successful heartbeats, lease polls, "
        "health checks and scrapes log at debug level.",
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("bootstrap_keys")
    @classmethod
    def _check_bootstrap_keys(cls, value: SecretStr) -> SecretStr:
        parse_bootstrap_keys(value.get_secret_value())
        return value

    def parsed_bootstrap_keys(self, environ: Mapping[str, str] | None = None) -> list[BootstrapKey]:
        """Keys from COORDINATOR_BOOTSTRAP_KEYS plus the systemd credential `bootstrap-keys`
        (`LoadCredential=`), so the secret never has to sit in the unit's environment."""
        environ = os.environ if environ is None else environ
        keys = parse_bootstrap_keys(self.bootstrap_keys.get_secret_value())
        credentials = environ.get("CREDENTIALS_DIRECTORY")
        if credentials:
            path = Path(credentials) / BOOTSTRAP_KEYS_CREDENTIAL
            if path.is_file():
                keys += parse_bootstrap_keys(path.read_text(encoding="utf-8").replace("\n", ","))
        return keys


ENV_PREFIX = "COORDINATOR_"


def unknown_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """`COORDINATOR_*` variables that name no setting (a typo would otherwise be ignored, and
    the default used without a word)."""
    environ = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in CoordinatorSettings.model_fields}
    return sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )


def parse_bootstrap_keys(value: str) -> list[BootstrapKey]:
    """Parse `role:subject:key,...`; a malformed entry is an error that names its position."""
    keys: list[BootstrapKey] = []
    for position, raw in enumerate(filter(None, (p.strip() for p in value.split(","))), 1):
        parts = raw.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"bootstrap key #{position} is not role:subject:key")
        role, subject, key = parts
        if role not in ROLES:
            raise ValueError(f"bootstrap key #{position} has unknown role {role!r}")
        if len(key) < MIN_BOOTSTRAP_KEY_CHARS:
            raise ValueError(
                f"bootstrap key #{position} is shorter than {MIN_BOOTSTRAP_KEY_CHARS} characters "
                "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if re.fullmatch(SUBJECT_PATTERN, subject) is None:
            raise ValueError(
                f"bootstrap key #{position} has a subject that is not 1 to 128 letters, digits "
                "and . _ @ -"
            )
        keys.append(BootstrapKey(role, subject, key))
    return keys
