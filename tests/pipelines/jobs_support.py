"""What the training and video tests share: handler resources over a local config, a
recording progress context, images and zips, and a proxy with the Fal emulator."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import msgspec
from PIL import Image
from provider_setup import emulator_env, write_config
from structured_support import kafka_settings_for, master_key, sibling

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.settings import load_kafka_settings
from core.redact import Redactor
from database import Sealer
from emulators.testing import EmulatorHandle, FalHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

__all__ = [
    "FAL_KEY",
    "Progress",
    "local_config",
    "png",
    "resources",
    "start_fal_proxy",
    "validate",
    "zipped",
]

FAL_KEY = "fal-test-key-4b1c:secret"


def png(color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def local_config(folder: Path) -> Path:
    """A config whose artifacts live under `folder`/artifacts (nothing else configured)."""
    path = folder / "litellm_config.yaml"
    path.write_text(f"gateway_settings:\n  artifacts:\n    root: {folder / 'artifacts'}\n")
    return path


def resources(url: str = "http://127.0.0.1:9") -> HandlerResources:
    """Handler resources whose proxy is `url` (by default nothing listens there)."""
    settings = load_kafka_settings(None)
    proxy = msgspec.structs.replace(settings.proxy, url=url, timeout_s=20.0)
    return HandlerResources(
        settings=msgspec.structs.replace(settings, proxy=proxy),
        proxy_api_key=master_key(),
        redactor=Redactor(),
    )


class Progress:
    """A HandlerContext whose progress reports are kept, details included."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.ctx = HandlerContext(attempt=1, traceparent=None, report=self._report)

    async def _report(
        self,
        stage: str,
        progress: float,
        message: str,
        /,
        *,
        queue_position: int | None = None,
        logs: Any = (),
    ) -> None:
        self.reports.append(
            {
                "stage": stage,
                "progress": progress,
                "message": message,
                "queue_position": queue_position,
                "logs": list(logs),
            }
        )


def validate(schemas: dict[str, Any], family: str, raw: bytes) -> None:
    """Validate one raw event against a kind's `event_schemas()` family."""
    schema = {**schemas["properties"][family], "$defs": schemas["$defs"]}
    jsonschema_rs.validator_for(schema).validate(msgspec.json.decode(raw))


def start_fal_proxy(
    tmp: Path,
    anthropic: EmulatorHandle,
    openai_: EmulatorHandle,
    gemini: EmulatorHandle,
    fal: FalHandle,
) -> Any:
    """A started ThreadedProxy over the repository's config, Fal pointed at its emulator."""
    support = sibling("proxy", "proxy_support")
    seeded = asyncio.run(
        support.seed_database(f"sqlite:///{tmp / 'gateway.db'}", Sealer.generate())
    )

    def edit(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": seeded.url, "refresh_ms": 50}
        data["gateway_settings"]["artifacts"] = {"root": str(tmp / "artifacts")}

    config = write_config(tmp / "litellm_config.yaml", edit)
    env = emulator_env(anthropic, openai_, gemini)
    env |= {
        "GATEWAY_KEY_ENCRYPTION_KEY": seeded.kek,
        "FAL_KEY": FAL_KEY,
        "FAL_API_BASE": fal.url,
    }
    settings = build_settings(config, env, master_key=support.MASTER_KEY)
    running = support.ThreadedProxy(ProxyServer(settings, port=0))
    running.start()
    return running


def proxy_client(proxy: Any) -> httpx.Client:
    """A client of the proxy with its master key."""
    return httpx.Client(
        base_url=proxy.url, headers={"authorization": f"Bearer {master_key()}"}, timeout=30
    )


def consumer_settings(proxy: Any, broker: Any, support: Any, handlers: list[Any]) -> Any:
    """The consumer tests' fast settings on `broker`, their proxy client pointed at `proxy`."""
    return kafka_settings_for(proxy, support.fast_settings(broker, partitions=2, handlers=handlers))
