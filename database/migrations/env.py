"""Alembic's entry point for the gateway's migrations.

At start-up `database.engine` runs them on its own connection (passed in the config's
attributes). From the command line (`alembic -c database/alembic.ini ...`, e.g. to write a new
revision) the URL comes from `-x url=...` or GATEWAY_DATABASE_URL, with a synchronous driver.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from database.schema import metadata

_SYNC = {"sqlite+aiosqlite": "sqlite", "postgresql+psycopg_async": "postgresql+psycopg"}


def _run(connection: sa.Connection) -> None:
    # Batch mode lets later migrations alter SQLite tables (copy-and-move) like PostgreSQL's.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _from_command_line() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "GATEWAY_DATABASE_URL"
    )
    if not url:
        raise SystemExit("give the database with -x url=... or GATEWAY_DATABASE_URL")
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    parsed = parsed.set(drivername=_SYNC.get(parsed.drivername, parsed.drivername))
    engine = sa.create_engine(parsed)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


_given = context.config.attributes.get("connection")
if _given is not None:
    _run(_given)
else:
    _from_command_line()
