"""Fixtures the pipeline tests share: the Fal and Vertex emulators reset around a test, and the
in-process proxies the handler and broker tests run against, one per test module (each proxy
holds a thread, a port and a key database; the tests isolate by event ids and subjects)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_support import start_fal_proxy
from structured_support import start_proxy
from vision_support import start_vision_proxy

from emulators.testing import EmulatorHandle, FalHandle, VertexHandle

TextEmulators = tuple[EmulatorHandle, EmulatorHandle, EmulatorHandle]


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    """The Fal emulator with short jobs, reset around the test (a module that needs other
    timings overrides this fixture, asking for it by name)."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.01, run_s=0.02)
    yield fal_emulator
    fal_emulator.reset()


@pytest.fixture
def vertex(vertex_emulator: VertexHandle) -> Iterator[VertexHandle]:
    """The Vertex emulator, reset around the test."""
    vertex_emulator.reset()
    yield vertex_emulator
    vertex_emulator.reset()


@pytest.fixture(scope="module")
def text_emulators(
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
) -> TextEmulators:
    """The Anthropic, OpenAI and Gemini emulators, in that order (the proxies' providers)."""
    return anthropic_emulator, openai_emulator, gemini_emulator


@pytest.fixture(scope="module")
def text_proxy(
    tmp_path_factory: pytest.TempPathFactory, text_emulators: TextEmulators
) -> Iterator[tuple[Any, Path]]:
    """The gateway proxy in this process on the repository's config, its providers the three
    emulators, and that config's path (handlers read the same routing)."""
    where = tmp_path_factory.mktemp("proxy")
    running = start_proxy(where, *text_emulators)
    yield running, where / "litellm_config.yaml"
    running.stop()


@pytest.fixture(scope="module")
def fal_proxy(
    tmp_path_factory: pytest.TempPathFactory, text_emulators: TextEmulators, fal_emulator: FalHandle
) -> Iterator[tuple[Any, Path]]:
    """The proxy in this process over the Fal emulator too, and its config's path."""
    where = tmp_path_factory.mktemp("fal-proxy")
    running = start_fal_proxy(where, *text_emulators, fal_emulator)
    yield running, where / "litellm_config.yaml"
    running.stop()


@pytest.fixture(scope="module")
def vision_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    text_emulators: TextEmulators,
    fal_emulator: FalHandle,
    onnx_models: Path,
) -> Iterator[tuple[Any, Path]]:
    """The proxy in this process over the Fal emulator and the built ONNX models, and its
    config's path."""
    folder = tmp_path_factory.mktemp("vision")
    running, config = start_vision_proxy(
        folder, *text_emulators, fal=fal_emulator, models_dir=onnx_models
    )
    yield running, config
    running.stop()
