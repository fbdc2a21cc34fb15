"""Tables of the coordinator. Money columns hold integer 1e-8 units; times are UTC.

Invariants the schema itself enforces (so they hold across processes):
- at most one `active` booking per GPU (unique partial index `uq_booking_active_gpu`);
- one review per booking (unique `reviews.booking_id`);
- one live GPU per (miner, uuid) (unique partial index `uq_gpu_miner_uuid`);
- one offer per (provider, exact model).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from coordinator_stub.core.money import from_units, to_units


class Money(TypeDecorator[Decimal]):
    """A Decimal amount stored as an integer count of 1e-8 AITBC."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return None if value is None else to_units(Decimal(value))

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_units(int(value))


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC out; naive UTC in the database (SQLite has no zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        Index("uq_api_keys_key_id", "key_id", unique=True),
        Index("ix_api_keys_subject", "subject"),  # one role per subject is checked by it
        Index("ix_api_keys_revoked_at", "revoked_at"),  # KeyCache.drop_revoked asks by it
    )

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    role: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Columns in the order migrations add them, so a new and an upgraded database are alike.
    # The key's public name: listed, and used to revoke it (the key itself is never stored).
    key_id: Mapped[str] = mapped_column(String(32))
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # to within 10 minutes
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Account(Base):
    __tablename__ = "accounts"

    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    escrowed: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    staked: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LedgerEntry(Base):
    """One leg of a transfer. The legs of one `tx_id` sum to zero, except `credit` (money in)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_subject_time", "subject", "created_at"),
        Index("ix_ledger_kind", "kind"),  # the sum of credits (supply cap) reads only those
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_id: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(128))
    bucket: Mapped[str] = mapped_column(String(16))  # balance | escrowed | staked
    amount: Mapped[Decimal] = mapped_column(Money)  # signed
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Miner(Base):
    __tablename__ = "miners"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    region: Mapped[str | None] = mapped_column(String(64))
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    agent: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    session_token: Mapped[str | None] = mapped_column(String(64))
    status_text: Mapped[str | None] = mapped_column(String(32))
    inflight: Mapped[int] = mapped_column(Integer, default=0)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deregistered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Bumped whenever the miner's desired lease set changes (book, release, expiry, fault).
    lease_version: Mapped[int] = mapped_column(BigInteger, default=0)
    # Heartbeats since the miner last came online (0: this one); NULL once the sweeper saw it
    # offline. Counted rather than timed so "just came online" is unambiguous at any clock.
    online_heartbeats: Mapped[int | None] = mapped_column(BigInteger)
    # An admin asked the miner to attest its GPUs now (the heartbeat answer says so until the
    # miner opens a challenge).
    attest_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Gpu(Base):
    __tablename__ = "gpus"
    __table_args__ = (
        Index("ix_gpus_price_id", "price_per_hour", "id"),
        # The list's selective filters scan one (model | memory_gb | miner | region, below)
        # partition in price order; the miner index also serves every lookup by miner.
        Index("ix_gpus_model_price_id", "model", "price_per_hour", "id"),
        Index("ix_gpus_memory_price_id", "memory_gb", "price_per_hour", "id"),
        Index("ix_gpus_miner_price_id", "miner_id", "price_per_hour", "id"),
        Index(
            "uq_gpu_miner_uuid",
            "miner_id",
            "uuid",
            unique=True,
            sqlite_where=text("deleted_at IS NULL AND uuid IS NOT NULL"),
            postgresql_where=text("deleted_at IS NULL AND uuid IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    miner_id: Mapped[str] = mapped_column(ForeignKey("miners.id"))
    uuid: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    memory_gb: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int | None] = mapped_column(BigInteger)
    compute_capability: Mapped[str | None] = mapped_column(String(16))
    cuda_version: Mapped[str | None] = mapped_column(String(32))
    driver_version: Mapped[str | None] = mapped_column(String(64))
    cuda_cores: Mapped[int | None] = mapped_column(Integer)
    region: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    price_per_hour: Mapped[Decimal] = mapped_column(Money)  # the miner's list price
    health: Mapped[str] = mapped_column(String(16), default="ok")
    health_reason: Mapped[str | None] = mapped_column(String(256))
    # When the agent first reported it unhealthy/lost (None while ok/degraded): the provider-fault
    # rule measures how long a booked GPU has been offline from here.
    unhealthy_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    utilization_pct: Mapped[float | None] = mapped_column(Float)
    memory_used_mib: Mapped[float | None] = mapped_column(Float)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    power_draw_w: Mapped[float | None] = mapped_column(Float)
    metrics_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Review aggregates, kept by atomic increments so they stay exact under concurrent posts.
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    total_reviews: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The latest attestation's verdict (miners/attestations.py): passed | failed | NULL (never).
    attestation_status: Mapped[str | None] = mapped_column(String(16))
    attested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attested_fp32_tflops: Mapped[float | None] = mapped_column(Float)
    attested_memory_tbps: Mapped[float | None] = mapped_column(Float)
    attestation_reason: Mapped[str | None] = mapped_column(String(512))
    # A challenge is open until then: the GPU is not bookable while its memory is being filled.
    attesting_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


ATTESTATION_STATUSES = ("challenged", "filled", "passed", "failed")


class Attestation(Base):
    """One proof-of-hardware challenge of a GPU and its verdict."""

    __tablename__ = "attestations"
    __table_args__ = (Index("ix_attestations_gpu_created", "gpu_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    gpu_id: Mapped[str] = mapped_column(ForeignKey("gpus.id"))
    miner_id: Mapped[str] = mapped_column(String(128))
    seed: Mapped[str] = mapped_column(String(18))  # "0x" + 16 hex digits: a u64 as text
    words: Mapped[int] = mapped_column(BigInteger)
    positions: Mapped[list[int] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    checks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    fp32_tflops: Mapped[float | None] = mapped_column(Float)
    memory_tbps: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    filled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# The list's region filter is case-insensitive (`lower(region) = ?`); an index on the same
# expression lets both databases walk one region in price order, and gives PostgreSQL's planner
# statistics on the expression (without them it guesses 0.5 % of the rows).
Index("ix_gpus_region_price_id", func.lower(Gpu.region), Gpu.price_per_hour, Gpu.id)

ACTIVE = "active"
BOOKING_STATUSES = ("active", "completed", "released", "cancelled_by_provider", "failed")
LEASE_STATES = ("pending", "started", "stopped", "rejected")


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "uq_booking_active_gpu",
            "gpu_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_bookings_status_end", "status", "end_time"),
        Index("ix_bookings_client_created", "client_id", "created_at"),
        Index("ix_bookings_miner_created", "miner_id", "created_at"),
        # A miner's desired leases (active, or ended recently) on every heartbeat and long poll.
        Index("ix_bookings_miner_ended", "miner_id", "ended_at"),
        Index("ix_bookings_gpu_created", "gpu_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    gpu_id: Mapped[str] = mapped_column(ForeignKey("gpus.id"))
    miner_id: Mapped[str] = mapped_column(String(128))
    client_id: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str | None] = mapped_column(String(128))
    duration_hours: Mapped[float] = mapped_column(Float)
    price_per_hour: Mapped[Decimal] = mapped_column(Money)  # the quoted (dynamic) price
    base_price: Mapped[Decimal] = mapped_column(Money)  # the list price at booking time
    total_cost: Mapped[Decimal] = mapped_column(Money)
    refund: Mapped[Decimal | None] = mapped_column(Money)
    miner_revenue: Mapped[Decimal | None] = mapped_column(Money)
    stakers_reward: Mapped[Decimal | None] = mapped_column(Money)
    pricing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default=ACTIVE)
    lease_state: Mapped[str] = mapped_column(String(16), default="pending")
    lease_detail: Mapped[str | None] = mapped_column(String(512))
    # Changes only when the desired state of the lease changes (active → ended).
    lease_generation: Mapped[int] = mapped_column(Integer, default=1)
    start_time: Mapped[datetime] = mapped_column(UtcDateTime)
    end_time: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_gpu_created", "gpu_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    gpu_id: Mapped[str] = mapped_column(ForeignKey("gpus.id"))
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), unique=True)
    client_id: Mapped[str] = mapped_column(String(128))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Stake(Base):
    __tablename__ = "stakes"
    __table_args__ = (
        Index("ix_stakes_miner_status", "miner_id", "status"),
        Index("ix_stakes_staker", "staker"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    staker: Mapped[str] = mapped_column(String(128))
    miner_id: Mapped[str] = mapped_column(ForeignKey("miners.id"))
    amount: Mapped[Decimal] = mapped_column(Money)  # principal
    rewards: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    lock_period_days: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lock_ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    unbonding_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StakeReward(Base):
    """One stake's part of one reward distribution (the history behind `Stake.rewards`)."""

    __tablename__ = "stake_rewards"
    __table_args__ = (Index("ix_stake_rewards_stake", "stake_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stake_id: Mapped[str] = mapped_column(ForeignKey("stakes.id"))
    miner_id: Mapped[str] = mapped_column(String(128))
    amount: Mapped[Decimal] = mapped_column(Money)
    ref: Mapped[str | None] = mapped_column(String(64))  # what was settled (a booking id)
    tx_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (UniqueConstraint("provider", "gpu_model", name="uq_offer_provider_model"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(128))
    gpu_model: Mapped[str] = mapped_column(String(128))
    gpu_memory_gb: Mapped[int] = mapped_column(Integer)
    gpu_count: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    price_per_hour: Mapped[Decimal] = mapped_column(Money)
    cuda_version: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Bid(Base):
    __tablename__ = "bids"
    __table_args__ = (Index("ix_bids_client", "client_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(128))
    capacity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    notes: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
