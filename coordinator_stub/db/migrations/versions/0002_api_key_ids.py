"""API keys get a public id, a last-use time and a revocation time.

`key_id` (`key_` + 16 hex) names a key in `GET /v1/admin/api-keys` and
`DELETE /v1/admin/api-keys/{key_id}`; keys that exist already get one here. `revoked_at` set
means the key is refused; `last_used_at` is kept to within 10 minutes.

Revision ID: 0002
Revises: 0001
Created: 2026-12-04
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(), nullable=True))
    conn = op.get_bind()
    for key_hash in conn.execute(sa.text("SELECT key_hash FROM api_keys")).scalars().all():
        conn.execute(
            sa.text("UPDATE api_keys SET key_id = :key_id WHERE key_hash = :key_hash"),
            {"key_id": f"key_{secrets.token_hex(8)}", "key_hash": key_hash},
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index("uq_api_keys_key_id", ["key_id"], unique=True)
        batch_op.create_index("ix_api_keys_subject", ["subject"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_subject")
        batch_op.drop_index("uq_api_keys_key_id")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("key_id")
