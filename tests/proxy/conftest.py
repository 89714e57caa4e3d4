"""Fixtures for the proxy tests: one in-process proxy per session, pointed at the emulators.

The proxy runs in a background thread with its own event loop (LiteLLM's proxy module holds
process-wide state, so one per process), with tiny backoff and timeouts so fault scenarios run
in milliseconds. Provider keys are recognisable fakes so tests can prove they never leak.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import psycopg
import pytest
from proxy_support import (
    MASTER_KEY,
    USER_ID,
    USER_KEY,
    ThreadedProxy,
    emulator_env,
    write_config,
)
from psycopg import sql

from emulators.testing import EmulatorHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings
from services import PostgresServer

# Like its cost map, LiteLLM fetches Anthropic beta-header data from the network unless told not
# to; tests never touch the network.
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")


@pytest.fixture(scope="session")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    postgres_server: PostgresServer,
) -> Iterator[ThreadedProxy]:
    """The gateway proxy, in-process, with the three emulators as its providers.

    Its key store is a PostgreSQL table holding one user-level key (USER_KEY for USER_ID).
    """
    database_url = postgres_server.url
    table = f"provider_api_keys_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (user_id text NULL, provider text NOT NULL, api_key text NOT NULL)"
            ).format(sql.Identifier(table))
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, 'anthropic', %s)").format(sql.Identifier(table)),
            (USER_ID, USER_KEY),
        )

    def with_key_store(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": database_url, "table": table}

    config = write_config(tmp_path_factory.mktemp("proxy") / "litellm_config.yaml", with_key_store)
    env = emulator_env(anthropic_emulator, openai_emulator, gemini_emulator)
    settings = build_settings(config, env, master_key=MASTER_KEY)
    running = ThreadedProxy(ProxyServer(settings, port=0))
    running.start()
    yield running
    running.stop()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


@pytest.fixture
def client(proxy: ThreadedProxy) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the proxy, with its own retries off."""
    with openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as sdk:
        yield sdk
