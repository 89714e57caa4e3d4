"""What the image-kind tests share: the gateway's media routes over the Fal and Vertex
emulators, a config copy naming the test's artifact store, and the handlers' resources.

The gateway here is the fast path and the media routes served in the test's own event loop
(no LiteLLM app: the image routes never reach it); tests/proxy/test_proxy_images_vertex.py
serves its gateway with the same `media_gateway`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
import yaml
from PIL import Image
from provider_setup import REPO_CONFIG, TEST_RESILIENCE

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.settings import KafkaSettings, load_kafka_settings
from core.redact import Redactor
from emulators.testing import FalHandle, VertexHandle
from proxy.auth import Authenticator
from proxy.fastpath import GatewayApp
from proxy.keys import KeyResolver
from proxy.media import MediaApp
from proxy.resilience import Resilience
from proxy.routing import RoutingTable
from proxy.settings import ResilienceSettings

__all__ = [
    "MASTER_KEY",
    "Progress",
    "image_config",
    "media_gateway",
    "not_found",
    "png",
    "provider_env",
    "resources_for",
]

MASTER_KEY = "sk-gw-image-kinds-test-4b7e"


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # pytest owns the process's signals


async def not_found(_scope: Any, _receive: Any, send: Any) -> None:
    """An ASGI app answering 404 to everything: the media routes' next app, unused here."""
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 96)) -> bytes:
    """A PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def image_config(folder: Path) -> Path:
    """The repository's config with the test's resilience and an artifact store in `folder`."""
    data = yaml.safe_load(REPO_CONFIG.read_text())
    data["gateway_settings"]["resilience"] = dict(TEST_RESILIENCE)
    data["gateway_settings"]["artifacts"] = {"backend": "local", "root": str(folder / "store")}
    path = folder / "litellm_config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def provider_env(folder: Path, fal: FalHandle, vertex: VertexHandle) -> dict[str, str]:
    """Keys and bases of both providers: a throw-away service account file for Vertex."""
    account = folder / "service-account.json"
    account.write_text(json.dumps(vertex.service_account()))
    os.chmod(account, 0o600)
    return {
        "FAL_KEY": "fal-image-kinds-test-key",
        "FAL_API_BASE": fal.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(account),
        "GOOGLE_CLOUD_PROJECT": "emulated-project",
        "VERTEX_API_BASE": vertex.url,
    }


@contextlib.asynccontextmanager
async def media_gateway(
    config: Path, env: dict[str, str], master_key: str = MASTER_KEY
) -> AsyncIterator[str]:
    """The media routes behind the fast path on a free port, on `config`, accepting
    `master_key`; its base URL."""
    data = yaml.safe_load(await asyncio.to_thread(config.read_text))
    routing = RoutingTable.from_config(data, env)
    redactor = Redactor()
    resilience = Resilience(
        ResilienceSettings(**TEST_RESILIENCE), KeyResolver(env, redactor=redactor)
    )
    media = MediaApp.from_config(
        not_found,
        config_path=str(config),
        routing=routing,
        resilience=resilience,
        redactor=redactor,
    )
    app = GatewayApp(
        media,
        routing=routing,
        authenticator=Authenticator(master_key, redactor=redactor),
        resilience=resilience,
        request_timeout_s=TEST_RESILIENCE["request_timeout_s"],
        redactor=redactor,
    )
    await media.start()
    server = _Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, loop="none", lifespan="off", log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        await media.stop()


def resources_for(url: str, base: KafkaSettings | None = None) -> HandlerResources:
    """The resources a handler factory gets, its proxy client pointed at `url`."""
    settings = base if base is not None else load_kafka_settings(None)
    client = msgspec.structs.replace(settings.proxy, url=url, timeout_s=20.0)
    return HandlerResources(
        settings=msgspec.structs.replace(settings, proxy=client),
        proxy_api_key=MASTER_KEY,
        redactor=Redactor(),
    )


class Progress:
    """A handler context whose progress reports are kept, in order."""

    def __init__(self) -> None:
        self.stages: list[str] = []

    async def _report(self, stage: str, progress: float, message: str) -> None:
        self.stages.append(stage)

    def context(self) -> HandlerContext:
        return HandlerContext(attempt=1, traceparent=None, report=self._report)
