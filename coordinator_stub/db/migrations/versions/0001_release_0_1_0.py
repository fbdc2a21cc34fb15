"""The schema of release 0.1.0: every table and index the first coordinator created.

A database made by 0.1.0 (which created its schema at start, without a version) is adopted at
this revision by `aitbc-coordinator migrate` and upgraded from here.

Revision ID: 0001
Revises: (none)
Created: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("escrowed", sa.BigInteger(), nullable=False),
        sa.Column("staked", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    op.create_table(
        "bids",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=128), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bids", schema=None) as batch_op:
        batch_op.create_index("ix_bids_client", ["client_id"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tx_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entries_tx_id"), ["tx_id"], unique=False)
        batch_op.create_index("ix_ledger_kind", ["kind"], unique=False)
        batch_op.create_index("ix_ledger_subject_time", ["subject", "created_at"], unique=False)

    op.create_table(
        "miners",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("agent", sa.JSON(), nullable=False),
        sa.Column("session_token", sa.String(length=64), nullable=True),
        sa.Column("status_text", sa.String(length=32), nullable=True),
        sa.Column("inflight", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("deregistered_at", sa.DateTime(), nullable=True),
        sa.Column("lease_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=128), nullable=False),
        sa.Column("gpu_model", sa.String(length=128), nullable=False),
        sa.Column("gpu_memory_gb", sa.Integer(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("price_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("cuda_version", sa.String(length=32), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "gpu_model", name="uq_offer_provider_model"),
    )
    op.create_table(
        "gpus",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("miner_id", sa.String(length=128), nullable=False),
        sa.Column("uuid", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("memory_gb", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.BigInteger(), nullable=True),
        sa.Column("compute_capability", sa.String(length=16), nullable=True),
        sa.Column("cuda_version", sa.String(length=32), nullable=True),
        sa.Column("driver_version", sa.String(length=64), nullable=True),
        sa.Column("cuda_cores", sa.Integer(), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("price_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("health_reason", sa.String(length=256), nullable=True),
        sa.Column("unhealthy_since", sa.DateTime(), nullable=True),
        sa.Column("utilization_pct", sa.Float(), nullable=True),
        sa.Column("memory_used_mib", sa.Float(), nullable=True),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("power_draw_w", sa.Float(), nullable=True),
        sa.Column("metrics_at", sa.DateTime(), nullable=True),
        sa.Column("rating_sum", sa.Integer(), nullable=False),
        sa.Column("total_reviews", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["miner_id"],
            ["miners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gpus", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gpus_memory_price_id", ["memory_gb", "price_per_hour", "id"], unique=False
        )
        batch_op.create_index(
            "ix_gpus_miner_price_id", ["miner_id", "price_per_hour", "id"], unique=False
        )
        batch_op.create_index(
            "ix_gpus_model_price_id", ["model", "price_per_hour", "id"], unique=False
        )
        batch_op.create_index("ix_gpus_price_id", ["price_per_hour", "id"], unique=False)
        # The list's case-insensitive region filter walks this expression index in price order.
        batch_op.create_index(
            "ix_gpus_region_price_id",
            [sa.text("lower(region)"), "price_per_hour", "id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_gpu_miner_uuid",
            ["miner_id", "uuid"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL AND uuid IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NULL AND uuid IS NOT NULL"),
        )

    op.create_table(
        "stakes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("staker", sa.String(length=128), nullable=False),
        sa.Column("miner_id", sa.String(length=128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("rewards", sa.BigInteger(), nullable=False),
        sa.Column("lock_period_days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("lock_ends_at", sa.DateTime(), nullable=False),
        sa.Column("unbonding_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["miner_id"],
            ["miners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stakes", schema=None) as batch_op:
        batch_op.create_index("ix_stakes_miner_status", ["miner_id", "status"], unique=False)
        batch_op.create_index("ix_stakes_staker", ["staker"], unique=False)

    op.create_table(
        "bookings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("gpu_id", sa.String(length=32), nullable=False),
        sa.Column("miner_id", sa.String(length=128), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=True),
        sa.Column("duration_hours", sa.Float(), nullable=False),
        sa.Column("price_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("base_price", sa.BigInteger(), nullable=False),
        sa.Column("total_cost", sa.BigInteger(), nullable=False),
        sa.Column("refund", sa.BigInteger(), nullable=True),
        sa.Column("miner_revenue", sa.BigInteger(), nullable=True),
        sa.Column("stakers_reward", sa.BigInteger(), nullable=True),
        sa.Column("pricing", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("lease_state", sa.String(length=16), nullable=False),
        sa.Column("lease_detail", sa.String(length=512), nullable=True),
        sa.Column("lease_generation", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("end_time", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gpu_id"],
            ["gpus.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bookings_client_created", ["client_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_bookings_gpu_created", ["gpu_id", "created_at"], unique=False)
        batch_op.create_index("ix_bookings_miner_created", ["miner_id", "created_at"], unique=False)
        batch_op.create_index("ix_bookings_miner_ended", ["miner_id", "ended_at"], unique=False)
        batch_op.create_index("ix_bookings_status_end", ["status", "end_time"], unique=False)
        batch_op.create_index(
            "uq_booking_active_gpu",
            ["gpu_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "stake_rewards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stake_id", sa.String(length=32), nullable=False),
        sa.Column("miner_id", sa.String(length=128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("tx_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stake_id"],
            ["stakes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stake_rewards", schema=None) as batch_op:
        batch_op.create_index("ix_stake_rewards_stake", ["stake_id", "created_at"], unique=False)

    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("gpu_id", sa.String(length=32), nullable=False),
        sa.Column("booking_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
        ),
        sa.ForeignKeyConstraint(
            ["gpu_id"],
            ["gpus.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("booking_id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("ix_reviews_gpu_created", ["gpu_id", "created_at"], unique=False)


def downgrade() -> None:
    # Children before parents (foreign keys); each table's indexes go with it.
    for table in (
        "reviews",
        "stake_rewards",
        "bookings",
        "stakes",
        "gpus",
        "offers",
        "miners",
        "ledger_entries",
        "bids",
        "api_keys",
        "accounts",
    ):
        op.drop_table(table)
