"""Fixtures for the key and identity tests: each module runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from keys_support import Stack, new_database_url, proxy_process

from database import Sealer
from emulators.testing import EmulatorHandle


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
) -> Iterator[Stack]:
    """Two proxy processes sharing one fresh gateway database on the backend of the run."""
    backend = str(request.param)
    postgres = request.getfixturevalue("postgres_server") if backend == "postgresql" else None
    tmp = tmp_path_factory.mktemp(f"keys-{backend}")
    url = new_database_url(backend, tmp, postgres)
    kek = Sealer.generate()
    handles = {
        "anthropic": anthropic_emulator,
        "openai": openai_emulator,
        "gemini": gemini_emulator,
    }
    with (
        proxy_process(tmp, url, kek, handles, name="a") as a,
        proxy_process(tmp, url, kek, handles, name="b") as b,
    ):
        yield Stack(backend=backend, database_url=url, kek=kek, a=a, b=b)
