"""What the structured-text tests share: a real in-process proxy over the emulators, and the
handler resources pointing the pipelines' handlers at it."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
from PIL import Image
from provider_setup import emulator_env, write_config

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.settings import KafkaSettings, load_kafka_settings
from core.redact import Redactor
from database import Sealer
from emulators.testing import EmulatorHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

__all__ = [
    "context",
    "kafka_settings_for",
    "master_key",
    "png_data_url",
    "resources_for",
    "sibling",
    "start_proxy",
]


def sibling(folder: str, name: str) -> ModuleType:
    """tests/<folder>/<name>.py, loaded once under its own name (the helpers of another test
    folder, reused rather than copied: the proxy's ThreadedProxy, the consumers' readers)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _proxy_support() -> ModuleType:
    return sibling("proxy", "proxy_support")


def start_proxy(
    tmp: Path, anthropic: EmulatorHandle, openai_: EmulatorHandle, gemini: EmulatorHandle
) -> Any:
    """A started ThreadedProxy with the repository's config, pointed at the emulators."""
    support = _proxy_support()
    url = f"sqlite:///{tmp / 'gateway.db'}"
    seeded = asyncio.run(support.seed_database(url, Sealer.generate()))

    def with_database(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": seeded.url, "refresh_ms": 50}

    config = write_config(tmp / "litellm_config.yaml", with_database)
    env = emulator_env(anthropic, openai_, gemini)
    env["GATEWAY_KEY_ENCRYPTION_KEY"] = seeded.kek
    settings = build_settings(config, env, master_key=support.MASTER_KEY)
    running = support.ThreadedProxy(ProxyServer(settings, port=0))
    running.start()
    return running


def kafka_settings_for(proxy: Any, base: KafkaSettings | None = None) -> KafkaSettings:
    """`base` (the defaults when None) with its proxy client pointed at `proxy`."""
    settings = base if base is not None else load_kafka_settings(None)
    client = msgspec.structs.replace(settings.proxy, url=proxy.url, timeout_s=20.0)
    return msgspec.structs.replace(settings, proxy=client)


def master_key() -> str:
    """The key the test proxy accepts."""
    return str(_proxy_support().MASTER_KEY)


def resources_for(proxy: Any) -> HandlerResources:
    """The resources a handler factory gets, pointed at `proxy` with its master key."""
    return HandlerResources(
        settings=kafka_settings_for(proxy),
        proxy_api_key=_proxy_support().MASTER_KEY,
        redactor=Redactor(),
    )


async def _no_progress(stage: str, progress: float, message: str) -> None:
    return None


def context() -> HandlerContext:
    """A first-attempt context without tracing."""
    return HandlerContext(attempt=1, traceparent=None, report=_no_progress)


def png_data_url(color: str = "red", side: int = 8) -> str:
    """A small PNG of one colour as a data: URL (providers check that images decode)."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
