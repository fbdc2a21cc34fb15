"""An index on `api_keys.revoked_at`: each coordinator process asks every second which keys were
revoked lately (`auth.KeyCache.drop_revoked`) instead of re-reading every key it trusts, and
that question must not scan the table of a fleet's keys.

Revision ID: 0005
Revises: 0004
Created: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_api_keys_revoked_at", "api_keys", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_revoked_at", table_name="api_keys")
