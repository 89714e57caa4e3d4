"""Provider key resolution: the user's key, then the system key, then the environment, with
the user- and system-level keys in PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from proxy_support import MASTER_KEY, USER_ID, USER_KEY, ThreadedProxy

from core.redact import Redactor
from emulators.testing import EmulatorHandle
from proxy.errors import MissingProviderKeyError
from proxy.keys import KeyResolver, PostgresKeyStore
from proxy.routing import Deployment
from services import PostgresServer

ANTHROPIC = Deployment(
    group="captioning",
    provider="anthropic",
    model="anthropic/claude-sonnet-4-20250514",
    key_env="ANTHROPIC_API_KEY",
    literal_key=None,
    params={},
)


@pytest.fixture
async def store(postgres_server: PostgresServer) -> AsyncIterator[PostgresKeyStore]:
    """A key store on a fresh table, dropped afterwards."""
    database_url = postgres_server.url
    table = f"provider_api_keys_test_{uuid.uuid4().hex[:8]}"
    key_store = PostgresKeyStore(database_url, table)
    await key_store.start()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            f"INSERT INTO {table} (user_id, provider, api_key) VALUES "  # noqa: S608 - test table
            "('alice', 'anthropic', 'user-key-alice'), (NULL, 'anthropic', 'system-key')"
        )
    yield key_store
    await key_store.stop()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f"DROP TABLE {table}")


async def test_user_key_comes_first(store: PostgresKeyStore) -> None:
    """A user with their own key gets it, ahead of the system and environment keys."""
    keys = KeyResolver({"ANTHROPIC_API_KEY": "env-key"}, store)
    assert await keys.resolve(ANTHROPIC, "alice") == "user-key-alice"


async def test_system_key_serves_users_without_their_own(store: PostgresKeyStore) -> None:
    """A user without a key, and the admin caller (no user), get the system key."""
    keys = KeyResolver({"ANTHROPIC_API_KEY": "env-key"}, store)
    assert await keys.resolve(ANTHROPIC, "bob") == "system-key"
    assert await keys.resolve(ANTHROPIC, None) == "system-key"


async def test_environment_key_is_the_last_level(store: PostgresKeyStore) -> None:
    """With no stored key for the provider the environment key is used."""
    gemini = Deployment(
        group="styling",
        provider="gemini",
        model="gemini/gemini-2.0-flash",
        key_env="GEMINI_API_KEY",
        literal_key=None,
        params={},
    )
    keys = KeyResolver({"GEMINI_API_KEY": "env-gemini-key"}, store)
    assert await keys.resolve(gemini, "alice") == "env-gemini-key"


async def test_missing_key_names_the_provider_and_env_var() -> None:
    """No key at any level is an error naming the provider and the variable to set."""
    with pytest.raises(MissingProviderKeyError, match=r"anthropic.*ANTHROPIC_API_KEY"):
        await KeyResolver({}).resolve(ANTHROPIC, "alice")


async def test_stored_keys_are_registered_for_redaction(store: PostgresKeyStore) -> None:
    """A key read from the store is masked in any text scrubbed afterwards."""
    redactor = Redactor()
    await KeyResolver({}, store, redactor=redactor).resolve(ANTHROPIC, "alice")
    assert "user-key-alice" not in redactor.scrub("the key user-key-alice leaked")


async def test_request_user_selects_their_stored_key(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle]
) -> None:
    """The request's `user` makes the proxy call Anthropic with that user's stored key."""
    emulators["anthropic"].configure(allowed_keys=[USER_KEY])
    async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as http:
        response = await http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={
                "model": "captioning",
                "user": USER_ID,
                "messages": [{"role": "user", "content": "a"}],
            },
        )
    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "anthropic"


async def test_gateway_user_header_selects_their_stored_key(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle]
) -> None:
    """Without a `user` field, the x-gateway-user header identifies the user."""
    emulators["anthropic"].configure(allowed_keys=[USER_KEY])
    async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as http:
        response = await http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {MASTER_KEY}", "x-gateway-user": USER_ID},
            json={"model": "captioning", "messages": [{"role": "user", "content": "b"}]},
        )
    assert response.headers["x-gateway-provider"] == "anthropic"


async def test_other_users_get_the_environment_key(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle]
) -> None:
    """A user without a stored key gets the env key, which this Anthropic rejects: fallback."""
    emulators["anthropic"].configure(allowed_keys=[USER_KEY])
    async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as http:
        response = await http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={
                "model": "captioning",
                "user": "someone-else",
                "messages": [{"role": "user", "content": "c"}],
            },
        )
    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "gemini"
    assert emulators["anthropic"].stats()["requests"] == 1
