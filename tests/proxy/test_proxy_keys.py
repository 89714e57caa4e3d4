"""Provider key resolution: the user's key, then the system key, then the environment, with
the user and system keys in the gateway database, and the user taken from the gateway key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from proxy_support import MASTER_KEY, USER_ID, USER_KEY, SeededDatabase, ThreadedProxy

from core.redact import Redactor
from database import Database, KeyRecords, Sealer
from emulators.http.runtime import key_fingerprint
from emulators.testing import EmulatorHandle
from proxy.errors import MissingProviderKeyError
from proxy.keys import ChangeWatch, KeyResolver
from proxy.routing import Deployment

ANTHROPIC = Deployment(
    group="captioning",
    provider="anthropic",
    model="anthropic/claude-sonnet-4-20250514",
    key_env="ANTHROPIC_API_KEY",
    literal_key=None,
    params={},
)
GEMINI = Deployment(
    group="styling",
    provider="gemini",
    model="gemini/gemini-2.0-flash",
    key_env="GEMINI_API_KEY",
    literal_key=None,
    params={},
)


@pytest.fixture
async def records(tmp_path: pytest.TempPathFactory) -> AsyncIterator[KeyRecords]:
    """A fresh SQLite gateway database with alice's and the system's Anthropic keys."""
    database = Database(f"sqlite:///{tmp_path}/keys.db")
    await database.start()
    store = KeyRecords(database, Sealer([Sealer.generate()]))
    await store.check_sealer()
    await store.create_user("alice", "user")
    await store.create_user("bob", "user")
    await store.set_provider_key("alice", "anthropic", "user-key-alice")
    await store.set_provider_key(None, "anthropic", "system-key")
    yield store
    await database.stop()


async def test_user_key_comes_first(records: KeyRecords) -> None:
    """A user with their own key gets it, ahead of the system and environment keys."""
    keys = KeyResolver({"ANTHROPIC_API_KEY": "env-key"}, records)
    assert await keys.resolve(ANTHROPIC, "alice") == "user-key-alice"


async def test_system_key_serves_users_without_their_own(records: KeyRecords) -> None:
    """A user without a key, and the master key (no user), get the system key."""
    keys = KeyResolver({"ANTHROPIC_API_KEY": "env-key"}, records)
    assert await keys.resolve(ANTHROPIC, "bob") == "system-key"
    assert await keys.resolve(ANTHROPIC, None) == "system-key"


async def test_environment_key_is_the_last_level(records: KeyRecords) -> None:
    """With no stored key for the provider the environment key is used."""
    keys = KeyResolver({"GEMINI_API_KEY": "env-gemini-key"}, records)
    assert await keys.resolve(GEMINI, "alice") == "env-gemini-key"


async def test_google_api_key_serves_gemini_when_gemini_api_key_is_unset() -> None:
    """GOOGLE_API_KEY is Gemini's environment key when GEMINI_API_KEY is not set."""
    keys = KeyResolver({"GOOGLE_API_KEY": "google-env-key"})
    assert await keys.resolve(GEMINI, None) == "google-env-key"


async def test_missing_key_names_the_provider_and_env_var() -> None:
    """No key at any level is an error naming the provider and the variable to set."""
    with pytest.raises(MissingProviderKeyError, match=r"anthropic.*ANTHROPIC_API_KEY"):
        await KeyResolver({}).resolve(ANTHROPIC, "alice")


async def test_stored_keys_are_registered_for_redaction(records: KeyRecords) -> None:
    """A key read from the store is masked in any text scrubbed afterwards."""
    redactor = Redactor()
    await KeyResolver({}, records, redactor=redactor).resolve(ANTHROPIC, "alice")
    assert "user-key-alice" not in redactor.scrub("the key user-key-alice leaked")


async def test_resolved_keys_are_cached_until_the_store_changes(records: KeyRecords) -> None:
    """A cached key stays until the change counter moves; then the new key is read."""
    watch = ChangeWatch(records, refresh_s=3600)
    keys = KeyResolver({}, records, watch=watch)
    assert await keys.resolve(ANTHROPIC, "alice") == "user-key-alice"
    await records.set_provider_key("alice", "anthropic", "user-key-alice-2")
    # Within the refresh interval the counter is not read again: the cached key serves.
    assert await keys.resolve(ANTHROPIC, "alice") == "user-key-alice"
    watch.changed()
    assert await keys.resolve(ANTHROPIC, "alice") == "user-key-alice-2"


async def test_another_writer_is_seen_at_the_next_counter_read(records: KeyRecords) -> None:
    """A change made through another connection invalidates the cache at the next read."""
    keys = KeyResolver({}, records, watch=ChangeWatch(records, refresh_s=0))
    assert await keys.resolve(ANTHROPIC, "bob") == "system-key"
    await records.set_provider_key("bob", "anthropic", "user-key-bob")
    assert await keys.resolve(ANTHROPIC, "bob") == "user-key-bob"


def _chat(proxy: ThreadedProxy, key: str, text: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", **headers},
        json={"model": "captioning", "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def test_the_gateway_keys_user_gets_their_stored_key(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle], key_database: SeededDatabase
) -> None:
    """A user's gateway key makes the proxy call Anthropic with that user's stored key."""
    response = _chat(proxy, key_database.user_gateway_key, "own key")
    assert response.status_code == 200, response.text
    assert emulators["anthropic"].stats()["by_key"] == {key_fingerprint(USER_KEY): 1}


def test_a_user_field_does_not_choose_whose_key_pays(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle], key_database: SeededDatabase
) -> None:
    """Another user naming USER_ID in `user` still gets the environment key, not USER_KEY."""
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key_database.other_gateway_key}"},
        json={
            "model": "captioning",
            "user": USER_ID,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert key_fingerprint(USER_KEY) not in emulators["anthropic"].stats()["by_key"]


def test_a_user_cannot_act_for_another(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle], key_database: SeededDatabase
) -> None:
    """x-gateway-user naming someone else is a 403 for a user, and no provider is called."""
    response = _chat(proxy, key_database.other_gateway_key, "act", **{"x-gateway-user": USER_ID})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert emulators["anthropic"].stats()["requests"] == 0


def test_an_admin_may_act_for_a_user_explicitly(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle]
) -> None:
    """The master key with x-gateway-user is served with that user's key."""
    response = _chat(proxy, MASTER_KEY, "admin acts", **{"x-gateway-user": USER_ID})
    assert response.status_code == 200, response.text
    assert emulators["anthropic"].stats()["by_key"] == {key_fingerprint(USER_KEY): 1}


def test_other_users_get_the_environment_key(
    proxy: ThreadedProxy, emulators: dict[str, EmulatorHandle], key_database: SeededDatabase
) -> None:
    """A user without a stored key gets the env key, which this Anthropic rejects: fallback."""
    emulators["anthropic"].configure(allowed_keys=[USER_KEY])
    response = _chat(proxy, key_database.other_gateway_key, "env key")
    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "gemini"
    assert emulators["anthropic"].stats()["requests"] == 1
