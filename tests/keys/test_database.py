"""The gateway database on SQLite and PostgreSQL: migrations, provider keys sealed at rest,
key-encryption-key rotation, and the refusal to start with a wrong or missing key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from keys_support import dump, new_database_url, proxy_process, store_version
from provider_setup import write_config

from core.config import ConfigError
from core.redact import Redactor
from database import (
    Database,
    DatabaseConfigError,
    EncryptionKeyError,
    KeyRecords,
    SchemaError,
    Sealer,
)
from emulators.testing import EmulatorHandle
from proxy.identity import KeyServices
from proxy.settings import build_settings

SECRET = "sk-ant-sealed-at-rest-5e8f0c1a2b3d"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    return new_database_url(str(request.param), tmp_path, postgres)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The database, migrated to head."""
    db = Database(database_url)
    await db.start()
    yield db
    await db.stop()


async def _stored(database: Database, kek: str) -> KeyRecords:
    records = KeyRecords(database, Sealer([kek]))
    await records.check_sealer()
    await records.create_user("alice", "user")
    await records.set_provider_key("alice", "anthropic", SECRET)
    return records


async def test_migrations_bring_a_new_database_to_head(database: Database) -> None:
    """A fresh database is migrated to the latest revision, and a second start is a no-op."""
    assert await database.revision() == "0002"
    await database.migrate()
    assert await database.revision() == "0002"


async def test_processes_starting_together_migrate_once(database_url: str) -> None:
    """Three starts racing on one empty database all succeed (the migration lock)."""
    databases = [Database(database_url) for _ in range(3)]
    await asyncio.gather(*(db.start() for db in databases))
    assert {await db.revision() for db in databases} == {"0002"}
    for db in databases:
        await db.stop()


async def test_start_without_migrating_refuses_an_old_schema(database_url: str) -> None:
    """A process that may not migrate refuses a database below this code's revision."""
    with pytest.raises(SchemaError, match="revision None"):
        await Database(database_url).start(migrate=False)


async def test_provider_keys_are_sealed_at_rest(database: Database, database_url: str) -> None:
    """The stored key reads back whole, yet appears nowhere in the database's rows."""
    records = await _stored(database, Sealer.generate())
    assert await records.provider_key("alice", "anthropic") == SECRET
    values = dump(database_url)
    assert "alice" in values  # the dump did read the rows
    assert not [v for v in values if SECRET in v or SECRET[8:-4] in v]


async def test_a_wrong_key_encryption_key_refuses_to_start(
    database: Database, database_url: str
) -> None:
    """Another key-encryption key is refused at the check, before any key is read."""
    await _stored(database, Sealer.generate())
    before = store_version(database_url)
    with pytest.raises(EncryptionKeyError, match="refusing to start"):
        await KeyRecords(database, Sealer([Sealer.generate()])).check_sealer()
    assert store_version(database_url) == before


async def test_a_missing_key_encryption_key_refuses_to_start(database: Database) -> None:
    """With sealed keys stored, starting with no key-encryption key is refused."""
    await _stored(database, Sealer.generate())
    with pytest.raises(EncryptionKeyError, match="no key-encryption key"):
        await KeyRecords(database, None).check_sealer()


def test_a_malformed_key_encryption_key_is_refused_without_echoing_it() -> None:
    """A key-encryption key that is not a Fernet key is named by position, never quoted."""
    with pytest.raises(EncryptionKeyError, match="#2 is not a Fernet key") as caught:
        Sealer([Sealer.generate(), "not-a-fernet-key-at-all"])
    assert "not-a-fernet-key-at-all" not in str(caught.value)


async def test_rotation_reseals_under_the_new_key(database: Database) -> None:
    """Old and new keys listed: reseal; then the new key alone opens, the old one is refused."""
    old, new = Sealer.generate(), Sealer.generate()
    await _stored(database, old)
    rotating = KeyRecords(database, Sealer([new, old]))
    await rotating.check_sealer()  # the old key is accepted during rotation
    assert await rotating.reseal_all() == 1
    after = KeyRecords(database, Sealer([new]))
    await after.check_sealer()
    assert await after.provider_key("alice", "anthropic") == SECRET
    with pytest.raises(EncryptionKeyError):
        await KeyRecords(database, Sealer([old])).check_sealer()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://host/db", "unsupported database scheme"),
        ("sqlite://", "must be a file"),
        ("sqlite:///:memory:", "must be a file"),
        ("not a url", "malformed"),
    ],
)
def test_unsupported_database_urls_are_refused(url: str, message: str) -> None:
    """A URL naming no database this package opens is a configuration error."""
    with pytest.raises(DatabaseConfigError, match=message):
        Database(url)


async def test_the_proxy_refuses_to_start_with_a_wrong_key(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """The proxy's start-up turns a wrong key-encryption key into a ConfigError naming it."""
    await _stored(database, Sealer.generate())

    def with_database(data: dict[str, object]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": database_url}  # type: ignore[index]

    config = write_config(tmp_path / "config.yaml", with_database)
    env = {"GATEWAY_KEY_ENCRYPTION_KEY": Sealer.generate()}
    services = KeyServices(build_settings(config, env, master_key="sk-master-x"), Redactor())
    with pytest.raises(ConfigError, match=r"refusing to start.*GATEWAY_KEY_ENCRYPTION_KEY"):
        await services.start()


def test_a_proxy_process_with_a_wrong_key_exits_with_the_reason(
    tmp_path: Path, emulators: dict[str, EmulatorHandle]
) -> None:
    """Started as a process over keys sealed under another key, the proxy exits and says why."""
    url = new_database_url("sqlite", tmp_path, None)

    async def seed() -> None:
        db = Database(url)
        await db.start()
        await _stored(db, Sealer.generate())
        await db.stop()

    asyncio.run(seed())
    with (
        pytest.raises(RuntimeError, match="key-encryption key does not open"),
        proxy_process(tmp_path, url, Sealer.generate(), emulators, name="wrong"),
    ):
        pass
