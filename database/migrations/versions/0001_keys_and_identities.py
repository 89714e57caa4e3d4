"""Users, gateway keys, provider keys and the key state row.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
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
        "users",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_table(
        "provider_keys",
        sa.Column("owner", sa.String(128), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("tail", sa.String(8), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    state = op.create_table(
        "key_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("seal_check", sa.Text, nullable=True),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0, "seal_check": None}])


def downgrade() -> None:
    for table in ("key_state", "provider_keys", "gateway_keys", "users"):
        op.drop_table(table)
