"""Miners get `online_heartbeats`: heartbeats since the miner last came online (NULL: offline).

A heartbeat (or registration) that finds the miner offline sets it to 0 (and the coordinator
logs `miner_online`), later ones add 1; the sweeper clears it once the last heartbeat is
older than `offline_after_s` (and logs `miner_offline`). Both are compare-and-set updates,
so with several coordinator processes each transition is logged once. Existing miners start
as offline: their next heartbeat logs them online.

Revision ID: 0003
Revises: 0002
Created: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("miners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("online_heartbeats", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("miners", schema=None) as batch_op:
        batch_op.drop_column("online_heartbeats")
