"""The gateway's tables, as SQLAlchemy Core metadata: what migrations build and queries use.

Why one module: the migrations create exactly these tables, and the repositories query them,
so a column has one definition. Secrets are never stored as they are: gateway keys as SHA-256
digests (they are random, 256-bit, so a plain digest cannot be brute-forced), provider keys as
Fernet tokens under the key-encryption key, with only a four-character tail kept for listings.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["SYSTEM_OWNER", "gateway_keys", "key_state", "metadata", "provider_keys", "users"]

# The `owner` of system-level provider keys; user ids cannot contain '*'.
SYSTEM_OWNER = "*system*"

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

gateway_keys = sa.Table(
    "gateway_keys",
    metadata,
    # The public half of a key (`gwk-<id>-<secret>`): how listings and revocation name it.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

provider_keys = sa.Table(
    "provider_keys",
    metadata,
    sa.Column("owner", sa.String(128), primary_key=True),
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Column("tail", sa.String(8), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# One row. `version` grows with every change to keys or identities, in the same transaction,
# so every process can tell in one cheap read whether its caches are stale. `seal_check` is a
# token sealed under the key-encryption key: opening it at start-up proves the key is right.
key_state = sa.Table(
    "key_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("seal_check", sa.Text, nullable=True),
)
