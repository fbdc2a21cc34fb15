"""Proof of hardware: attestations, and each GPU's latest verdict.

`attestations` keeps every challenge (seed, fill size, the positions asked after the fill)
and its verdict. A GPU carries its latest verdict (`attestation_status`: passed | failed,
NULL: never attested), when, the measured FP32 rate and bandwidth, and the reason of a
failure, so the list can filter on `verified` without a join. `miners.attest_requested_at`
is an admin's request that the miner attest its GPUs now; the heartbeat answer carries it.

Revision ID: 0004
Revises: 0003
Created: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attestations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("gpu_id", sa.String(length=32), nullable=False),
        sa.Column("miner_id", sa.String(length=128), nullable=False),
        sa.Column("seed", sa.String(length=18), nullable=False),
        sa.Column("words", sa.BigInteger(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=True),
        sa.Column("fp32_tflops", sa.Float(), nullable=True),
        sa.Column("memory_tbps", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("filled_at", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["gpu_id"], ["gpus.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attestations", schema=None) as batch_op:
        batch_op.create_index("ix_attestations_gpu_created", ["gpu_id", "created_at"])
    with op.batch_alter_table("gpus", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attestation_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("attested_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("attested_fp32_tflops", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("attested_memory_tbps", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("attestation_reason", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("attesting_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("miners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attest_requested_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("miners", schema=None) as batch_op:
        batch_op.drop_column("attest_requested_at")
    with op.batch_alter_table("gpus", schema=None) as batch_op:
        batch_op.drop_column("attesting_until")
        batch_op.drop_column("attestation_reason")
        batch_op.drop_column("attested_memory_tbps")
        batch_op.drop_column("attested_fp32_tflops")
        batch_op.drop_column("attested_at")
        batch_op.drop_column("attestation_status")
    with op.batch_alter_table("attestations", schema=None) as batch_op:
        batch_op.drop_index("ix_attestations_gpu_created")
    op.drop_table("attestations")
