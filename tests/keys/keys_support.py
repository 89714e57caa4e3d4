"""Helpers for the key and identity tests: databases on both backends, proxy processes, and
direct reads of what the database holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from provider_setup import FAKE_KEYS, emulator_env, write_config

from emulators.testing import EmulatorHandle
from services import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-gw-keys-master-4c1d9e"
# Runs one proxy the way `gateway up` composes it: one redactor for the server and the logs.
_PROXY_MAIN = """
import asyncio, os, signal, sys
from core.logging import configure_logging
from core.redact import Redactor
from proxy.server import ProxyServer
from proxy.settings import build_settings

async def main():
    redactor = Redactor()
    configure_logging(json=True, redactor=redactor)
    settings = build_settings(sys.argv[1], os.environ, redactor=redactor)
    server = ProxyServer(settings, port=0, redactor=redactor)
    await server.start()
    print(f"LISTENING {server.port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()

asyncio.run(main())
"""


def new_database_url(backend: str, tmp: Path, postgres: PostgresServer | None) -> str:
    """A fresh, empty database on `backend` ('sqlite' or 'postgresql')."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'gateway-{uuid.uuid4().hex[:8]}.db'}"
    assert postgres is not None
    name = f"gw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return sa.make_url(postgres.url).set(database=name).render_as_string(hide_password=False)


def _sync_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    return (
        parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed
    )


def dump(url: str) -> list[str]:
    """Every value of every row of every table, as text: what someone reading the database sees."""
    engine = sa.create_engine(_sync_url(url))
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return [
                str(value)
                for table in meta.sorted_tables
                for row in conn.execute(sa.select(table))
                for value in row
            ]
    finally:
        engine.dispose()


def store_version(url: str) -> int:
    """The change counter: it moves with every write to keys and identities."""
    engine = sa.create_engine(_sync_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT version FROM key_state")).scalar_one())
    finally:
        engine.dispose()


@dataclass
class ProxyProcess:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


@contextmanager
def proxy_process(
    tmp: Path, database_url: str, kek: str, emulators: dict[str, EmulatorHandle], *, name: str
) -> Iterator[ProxyProcess]:
    """A proxy in its own process over `database_url`, logging JSON to a file."""

    def with_database(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": database_url, "refresh_ms": 50}

    config = write_config(tmp / f"{name}.yaml", with_database)
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_BASE"))},
        **emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"]),
        "GATEWAY_KEY_ENCRYPTION_KEY": kek,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "PYTHONPATH": str(ROOT),
    }
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _PROXY_MAIN, str(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        port = _wait_listening(process, log)
        yield ProxyProcess(url=f"http://127.0.0.1:{port}", log=log, process=process)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("LISTENING "):
                return int(line.split()[1])
        if process.poll() is not None:
            raise RuntimeError(f"proxy exited at start-up:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError("proxy did not start within 90 s")


@dataclass
class Person:
    user_id: str
    gateway_key: str
    key_id: str


@dataclass
class Stack:
    """Two proxy processes over one database, and every secret the tests gave them."""

    backend: str
    database_url: str
    kek: str
    a: ProxyProcess
    b: ProxyProcess
    secrets: list[str] = field(default_factory=list)

    def client(self, key: str, *, process: str = "a") -> httpx.Client:
        proxy = self.a if process == "a" else self.b
        return httpx.Client(
            base_url=proxy.url, headers={"authorization": f"Bearer {key}"}, timeout=30
        )

    def admin(self) -> httpx.Client:
        return self.client(MASTER_KEY)

    def person(self, prefix: str, role: str = "user") -> Person:
        """A new user with a gateway key, created by the admin over HTTP."""
        user_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
        with self.admin() as admin:
            created = admin.post("/gateway/v1/users", json={"user_id": user_id, "role": role})
            assert created.status_code == 201, created.text
            issued = admin.post(f"/gateway/v1/users/{user_id}/gateway-keys")
            assert issued.status_code == 201, issued.text
        body = issued.json()
        self.secrets.append(body["key"])
        return Person(user_id=user_id, gateway_key=body["key"], key_id=body["key_id"])

    def provider_key(self, label: str) -> str:
        """A recognisable provider key, remembered so tests can prove it never leaks."""
        key = f"sk-ant-{label}-{uuid.uuid4().hex}"
        self.secrets.append(key)
        return key


def chat(client: httpx.Client, text: str) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={"model": "captioning", "messages": [{"role": "user", "content": text}]},
    )


__all__ = [
    "FAKE_KEYS",
    "MASTER_KEY",
    "Person",
    "ProxyProcess",
    "Stack",
    "chat",
    "dump",
    "new_database_url",
    "proxy_process",
    "store_version",
]
