"""Shared inputs for the emulator fidelity tests.

The directory has no ``__init__.py`` on purpose: as a package it would be named ``emulators``
and shadow the package under test.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from emulators.testing import EmulatorHandle, VertexHandle

# A valid 1x1 PNG: the emulators decode and verify images as the real APIs do.
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def png_b64() -> str:
    """Base64 text of a tiny PNG."""
    return base64.b64encode(PNG_BYTES).decode()


@pytest.fixture
def png_bytes() -> bytes:
    """Raw bytes of a tiny PNG."""
    return PNG_BYTES


def _encode(width: int, height: int, fmt: str = "PNG", noise: bool = False) -> bytes:
    if noise:
        # Random pixels do not compress, so the file is about 3 bytes a pixel.
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (200, 120, 90))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def image_b64() -> Callable[..., str]:
    """Base64 of a real image: ``image_b64(width, height, fmt="PNG", noise=False)``."""
    return lambda *args, **kwargs: base64.b64encode(_encode(*args, **kwargs)).decode()


@pytest.fixture
def openai_em(openai_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The OpenAI emulator, reset after the test."""
    yield openai_emulator
    openai_emulator.reset()


@pytest.fixture
def anthropic_em(anthropic_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The Anthropic emulator, reset after the test."""
    yield anthropic_emulator
    anthropic_emulator.reset()


@pytest.fixture
def gemini_em(gemini_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The Gemini emulator, reset after the test."""
    yield gemini_emulator
    gemini_emulator.reset()


@pytest.fixture
def vertex_em(vertex_emulator: VertexHandle) -> Iterator[VertexHandle]:
    """The Vertex emulator, reset before and after the test (tokens and keys included)."""
    vertex_emulator.reset()
    yield vertex_emulator
    vertex_emulator.reset()
