"""The proxy server component: LiteLLM's proxy app behind the fast path, served in-process.

Why it exists: `gateway up` and the tests need one object with an explicit lifecycle
(`start()` / `stop()`) that loads LiteLLM's app with our config, wraps it, and serves it with
uvicorn in the caller's event loop, leaving signal handling to whoever owns the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Generator

import structlog
import uvicorn

from core.redact import Redactor
from proxy.identity import KeyServices
from proxy.resilience import Resilience
from proxy.settings import ProxySettings

__all__ = ["ProxyServer"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The process owner (the CLI) handles signals and calls stop(); uvicorn must not
        # re-raise them after shutting down.
        yield


class ProxyServer:
    """LiteLLM's proxy app wrapped by `GatewayApp`, served by uvicorn on host:port."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        host: str = "127.0.0.1",
        port: int = 4000,
        redactor: Redactor | None = None,
    ) -> None:
        self._settings = settings
        self._host = host
        self._port = port
        # The process's redactor when the composition root hands one down (so its logging
        # masks what this server learns), else one of this server's own.
        self._redactor = redactor if redactor is not None else Redactor()
        self._redactor.add(settings.master_key)
        for value in settings.env_keys.values():
            self._redactor.add(value)
        self._keys = KeyServices(settings, self._redactor)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = structlog.get_logger("proxy.server")

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def redactor(self) -> Redactor:
        """Every secret this server has seen; what it sends and logs is scrubbed with it."""
        return self._redactor

    async def start(self) -> None:
        # LiteLLM reads these while importing and during its start-up event.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
        os.environ["CONFIG_FILE_PATH"] = self._settings.config_path
        os.environ["LITELLM_MASTER_KEY"] = self._settings.master_key
        import litellm  # noqa: PLC0415 - heavy import, start-up only
        from litellm.proxy import proxy_server  # noqa: PLC0415

        # Otherwise LiteLLM prints a feedback banner to stdout on every provider error.
        litellm.suppress_debug_info = True

        from proxy.fastpath import GatewayApp  # noqa: PLC0415 - imports litellm

        # The gateway database (identities, provider keys) and what is built over it.
        await self._keys.start()
        keys = self._keys.resolver
        resilience = Resilience(self._settings.resilience, keys, redactor=self._redactor)
        from proxy.media import MediaApp  # noqa: PLC0415 - loads the media plugins

        # Image task routes, ahead of LiteLLM's; the fast path's authenticator reaches them.
        media = MediaApp.from_config(
            proxy_server.app,
            config_path=self._settings.config_path,
            routing=self._settings.routing,
            resilience=resilience,
            redactor=self._redactor,
            database=self._keys.database,
        )
        from proxy.embeddings import EmbeddingsApp  # noqa: PLC0415 - loads the plugins

        # /v1/embeddings for tasks served by in-process models, ahead of LiteLLM's route.
        embeddings = EmbeddingsApp.from_config(
            media,
            config_path=self._settings.config_path,
            routing=self._settings.routing,
            redactor=self._redactor,
        )
        app = GatewayApp(
            embeddings,
            routing=self._settings.routing,
            authenticator=self._keys.authenticator,
            resilience=resilience,
            request_timeout_s=self._settings.resilience.request_timeout_s,
            redactor=self._redactor,
        )
        config = uvicorn.Config(
            self._keys.mount(app),
            host=self._host,
            port=self._port,
            loop="none",
            # httptools when installed (markedly less CPU per request than h11), else h11.
            http="auto",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("proxy server exited during start-up")
            await asyncio.sleep(0.05)
        if self._port == 0:
            sockets = self._server.servers[0].sockets
            self._port = int(sockets[0].getsockname()[1])
        self._log.info("proxy_started", url=self.url, tasks=self._settings.routing.tasks())

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._server = None
            self._task = None
        await self._keys.stop()
        self._log.info("proxy_stopped")
