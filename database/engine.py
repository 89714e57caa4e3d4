"""Opening the gateway's database from a URL, and bringing its schema to this code's revision.

Why it exists: every component that keeps state (keys and identities now) shares one database,
an SQLite file by default (embedded, nothing to run) or PostgreSQL when a URL names one. The
URL's scheme picks the async driver; the schema is built only by the Alembic migrations under
`database/migrations`, run at start-up under a lock so that processes starting together do not
migrate twice (a PostgreSQL advisory lock, or a lock file beside the SQLite file).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from database.errors import DatabaseConfigError, SchemaError

__all__ = ["MIGRATIONS", "Database", "async_url", "migrations_config"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: the key PostgreSQL's advisory lock is taken under while migrating.
_MIGRATION_LOCK = 0x6A7E_0001
_SQLITE = ("sqlite", "sqlite+aiosqlite", "sqlite+pysqlite")
_POSTGRES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg_async")


def async_url(url: str) -> sa.URL:
    """`url` with the async driver of its database: aiosqlite, or psycopg for PostgreSQL."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseConfigError(
            "the database URL is malformed (expected sqlite:///PATH or postgresql://...)"
        ) from None
    if parsed.drivername in _SQLITE:
        if not parsed.database or parsed.database == ":memory:":
            # Each connection would get its own empty database.
            raise DatabaseConfigError("an SQLite database must be a file: sqlite:///PATH")
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername in _POSTGRES:
        return parsed.set(drivername="postgresql+psycopg")
    raise DatabaseConfigError(
        f"unsupported database scheme '{parsed.drivername}': use sqlite:///PATH or postgresql://"
    )


def migrations_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the gateway's migrations, bound to `connection` if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets one process write while others read; busy_timeout makes writers queue rather
    # than fail when two processes write at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One engine over the gateway's database; `start()` migrates it to head."""

    def __init__(self, url: str) -> None:
        self._url = async_url(url)
        self._engine: AsyncEngine | None = None
        self._file = Path(str(self._url.database)).expanduser() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self._url.drivername.startswith("sqlite")

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("Database.start() was not awaited")
        return self._engine

    async def start(self, *, migrate: bool = True) -> None:
        if self._file is not None:
            await asyncio.to_thread(self._file.parent.mkdir, parents=True, exist_ok=True)
        engine = create_async_engine(self._url, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        self._engine = engine
        try:
            if migrate:
                await self.migrate()
            else:
                await self._check_revision()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def migrate(self) -> None:
        """Apply every migration this database lacks (none when it is at head)."""
        async with self._migration_lock(), self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            try:
                await conn.run_sync(_upgrade)
            except Exception as exc:
                raise SchemaError(f"migrating the database failed: {_brief(exc)}") from exc

    async def revision(self) -> str | None:
        """The revision the database is at (None before the first migration)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current)

    async def _check_revision(self) -> None:
        head = ScriptDirectory.from_config(migrations_config()).get_current_head()
        current = await self.revision()
        if current != head:
            raise SchemaError(f"the database is at revision {current}, this code needs {head}")

    @contextlib.asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        if self._file is None:
            yield
            return
        handle = await asyncio.to_thread(_locked, self._file.with_name(self._file.name + ".lock"))
        try:
            yield
        finally:
            handle.close()  # closing the file releases the lock


def _locked(path: Path) -> IO[str]:
    handle = path.open("a")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def _upgrade(connection: sa.Connection) -> None:
    command.upgrade(migrations_config(connection), "head")


def _current(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _brief(exc: BaseException) -> str:
    # Driver errors can quote the URL; the first line of the message is enough to act on.
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
