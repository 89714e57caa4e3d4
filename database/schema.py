"""The gateway's tables, as SQLAlchemy Core metadata: what migrations build and queries use.

Why one module: the migrations create exactly these tables, and the repositories query them,
so a column has one definition. Secrets are never stored as they are: gateway keys as SHA-256
digests (they are random, 256-bit, so a plain digest cannot be brute-forced), provider keys as
Fernet tokens under the key-encryption key, with only a four-character tail kept for listings.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "SYSTEM_OWNER",
    "gateway_keys",
    "key_state",
    "media_files",
    "media_job_events",
    "media_jobs",
    "metadata",
    "provider_keys",
    "users",
]

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

# Media jobs (fine-tuning, video generation) and the files they read: kept here so that a job
# outlives the process that created it. `handle` is the provider's job handle (request id and
# URLs), so a restarted gateway looks the job up again and never submits it twice; no provider
# key is ever written. `version` grows with each write (optimistic concurrency).
media_files = sa.Table(
    "media_files",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    # The user who uploaded it; null: the master key.
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # The bytes themselves (bounded by `database.jobs.MAX_FILE_BYTES`): one place for the data,
    # shared by every gateway process on PostgreSQL as on SQLite.
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

media_jobs = sa.Table(
    "media_jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("task", sa.String(128), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("handle", sa.JSON, nullable=True),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("progress", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer, nullable=True),
    sa.Column("logs_seen", sa.Integer, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_media_jobs_kind_created", "kind", "created_at"),
    sa.Index("ix_media_jobs_request", "provider", "request_id"),
)

media_job_events = sa.Table(
    "media_job_events",
    metadata,
    sa.Column(
        "job_id",
        sa.String(40),
        sa.ForeignKey("media_jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=True),
)
