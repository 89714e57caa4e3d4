"""What the vision-kind tests share: a config copy (the test's artifact store, the built ONNX
models), the real in-process proxy over the Fal emulator, the handlers' resources, and what
the Fal emulator answers for an image (computed by its own functions, as the expectation);
Progress is the image kinds' recording handler context."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import msgspec
from image_support import Progress
from PIL import Image
from provider_setup import emulator_env, write_config
from structured_support import sibling

from consumers.handler_config import HandlerResources
from consumers.settings import load_kafka_settings
from core.redact import Redactor
from database import Sealer
from emulators.fal.vision import detect, segment
from emulators.testing import EmulatorHandle, FalHandle
from plugins.fal.vision import faces_answer
from proxy.server import ProxyServer
from proxy.settings import build_settings

__all__ = [
    "Progress",
    "emulated_boxes",
    "emulated_mask",
    "encoded",
    "master_key",
    "resources",
    "start_vision_proxy",
    "vision_config",
]


def vision_config(folder: Path, models_dir: Path | None = None, edit: Any = None) -> Path:
    """The repository's config in `folder` (artifacts under it), the models at `models_dir`."""

    def change(data: dict[str, Any]) -> None:
        data["gateway_settings"]["artifacts"] = {"backend": "local", "root": str(folder / "store")}
        if models_dir is not None:
            data["gateway_settings"]["onnx"]["models_dir"] = str(models_dir)
        if edit is not None:
            edit(data)

    return write_config(folder / "litellm_config.yaml", change)


def start_vision_proxy(
    folder: Path,
    anthropic: EmulatorHandle,
    openai_: EmulatorHandle,
    gemini: EmulatorHandle,
    *,
    fal: FalHandle,
    models_dir: Path,
) -> tuple[Any, Path]:
    """A started ThreadedProxy (Fal its emulator, a seeded key database) and its config."""
    support = sibling("proxy", "proxy_support")
    seeded = asyncio.run(
        support.seed_database(f"sqlite:///{folder / 'gateway.db'}", Sealer.generate())
    )

    def with_keys(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": seeded.url, "refresh_ms": 50}
        # The first Fal call of a process is slow on a busy machine (imports, connections): a
        # timeout far above any answer keeps it one attempt, as the accounting asserts.
        data["gateway_settings"]["resilience"]["request_timeout_s"] = 10

    config = vision_config(folder, models_dir, with_keys)
    env = emulator_env(anthropic, openai_, gemini)
    env |= {
        "GATEWAY_KEY_ENCRYPTION_KEY": seeded.kek,
        "FAL_KEY": "fal-vision-kinds-test-key",
        "FAL_API_BASE": fal.url,
    }
    settings = build_settings(config, env, master_key=support.MASTER_KEY)
    running = support.ThreadedProxy(ProxyServer(settings, port=0))
    running.start()
    return running, config


def master_key() -> str:
    """The key the test proxy accepts."""
    return str(sibling("proxy", "proxy_support").MASTER_KEY)


def resources(proxy_url: str = "http://127.0.0.1:9", key: str | None = None) -> HandlerResources:
    """The resources a handler factory gets; the default proxy URL answers nothing, for the
    handlers that must fail (or answer locally) before any proxy call."""
    settings = load_kafka_settings(None)
    client = msgspec.structs.replace(settings.proxy, url=proxy_url, timeout_s=20.0)
    return HandlerResources(
        settings=msgspec.structs.replace(settings, proxy=client),
        proxy_api_key=key,
        redactor=Redactor(),
    )


def encoded(image: Image.Image, kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()


def emulated_boxes(data: bytes, prompt: str = "face") -> list[list[int]]:
    """The face boxes `[x, y, w, h]` the Fal emulator (Moondream3) answers for `data`."""
    image = Image.open(io.BytesIO(data))
    image.load()
    answer = faces_answer(detect({"prompt": prompt}, image, data), *image.size)
    return [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in (f["box"] for f in answer["faces"])]


def emulated_mask(data: bytes, prompt: str = "person") -> Image.Image:
    """The union of the masks the Fal emulator (SAM-3) answers for `data`, as mode "L"."""
    image = Image.open(io.BytesIO(data))
    image.load()
    body = {"prompt": prompt, "return_multiple_masks": True, "max_masks": 3}
    _, files = segment(body, image, data)
    merged = Image.new("L", image.size, 0)
    for _, png in files.values():
        mask = Image.open(io.BytesIO(png)).convert("L").point(lambda v: 255 if v >= 128 else 0)
        merged = Image.composite(mask, merged, mask)
    return merged
