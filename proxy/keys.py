"""Provider API-key resolution: the end user's key, then the system key, then the environment.

Why it exists: users may bring their own provider keys, admins set keys for everyone (user id
NULL), and deployments fall back to `*_API_KEY` environment variables. Resolution runs once per
attempt (a fallback provider needs its own key), so lookups are cached briefly. Every key read
is added to the process's redactor before it is used, so no error body, event or log line can
carry it.

The end user is the `user` field of the request body (OpenAI's own field for it) or, when
absent, the `x-gateway-user` header; the master key alone identifies no user, so only system
and environment keys apply to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol

import psycopg
from psycopg import sql

from core.redact import Redactor
from proxy.errors import MissingProviderKeyError
from proxy.routing import Deployment

__all__ = ["KeyResolver", "KeyStore", "PostgresKeyStore"]


class KeyStore(Protocol):
    """Where user- and system-level keys live; `user_id=None` asks for the system key."""

    async def lookup(self, provider: str, user_id: str | None) -> str | None: ...


class PostgresKeyStore:
    """Keys in table `provider_api_keys(user_id text NULL, provider text, api_key text)`."""

    def __init__(self, database_url: str, table: str = "provider_api_keys") -> None:
        self._url = database_url
        self._table = sql.Identifier(table)
        self._conn: psycopg.AsyncConnection[tuple[str]] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        await self._conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " user_id text NULL, provider text NOT NULL, api_key text NOT NULL)"
            ).format(self._table)
        )

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def lookup(self, provider: str, user_id: str | None) -> str | None:
        if self._conn is None:
            raise RuntimeError("PostgresKeyStore.start() was not awaited")
        query = sql.SQL(
            "SELECT api_key FROM {} WHERE provider = %s AND user_id IS NOT DISTINCT FROM %s LIMIT 1"
        ).format(self._table)
        # One connection serves all lookups; psycopg connections are not concurrent-safe.
        async with self._lock:
            cur = await self._conn.execute(query, (provider, user_id))
            row = await cur.fetchone()
        return row[0] if row else None


class KeyResolver:
    """Resolve the key for one attempt: user level, then system level, then environment."""

    def __init__(
        self,
        env_keys: Mapping[str, str],
        store: KeyStore | None = None,
        *,
        cache_ttl_s: float = 30.0,
        redactor: Redactor | None = None,
    ) -> None:
        self._env = dict(env_keys)
        self._store = store
        self._ttl = cache_ttl_s
        self._redactor = redactor if redactor is not None else Redactor()
        for value in self._env.values():
            self._redactor.add(value)
        self._cache: dict[tuple[str, str | None], tuple[float, str | None]] = {}

    async def _stored(self, provider: str, user_id: str | None) -> str | None:
        if self._store is None:
            return None
        now = time.monotonic()
        hit = self._cache.get((provider, user_id))
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await self._store.lookup(provider, user_id)
        self._redactor.add(value)
        self._cache[(provider, user_id)] = (now + self._ttl, value)
        return value

    async def resolve(self, deployment: Deployment, user_id: str | None) -> str:
        provider = deployment.provider
        if user_id is not None and (key := await self._stored(provider, user_id)):
            return key
        if key := await self._stored(provider, None):
            return key
        if deployment.key_env and (key := self._env.get(deployment.key_env)):
            return key
        if deployment.literal_key:
            self._redactor.add(deployment.literal_key)
            return deployment.literal_key
        hint = deployment.key_env or f"{provider.upper()}_API_KEY"
        raise MissingProviderKeyError(
            f"no API key for provider '{provider}': set {hint} or store a user/system key",
            provider=provider,
        )
