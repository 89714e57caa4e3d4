"""The proxy server component: LiteLLM's proxy app behind the fast path, served in-process.

Why it exists: `gateway up` and the tests need one object with an explicit lifecycle
(`start()` / `stop()`) that loads LiteLLM's app with our config, wraps it, and serves it with
uvicorn in the caller's event loop, leaving signal handling to whoever owns the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

import structlog
import uvicorn

from budgets import Budgets, open_budgets
from core.redact import Redactor
from proxy.artifact_links import ArtifactLinks
from proxy.budgeting import BudgetGate
from proxy.identity import KeyServices
from proxy.metrics import ProxyMetrics
from proxy.resilience import Resilience
from proxy.settings import ProxySettings
from proxy.tracing import Tracing

if TYPE_CHECKING:
    from proxy.transport import Transport

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
        sock: socket.socket | None = None,
        headers: Sequence[tuple[str, str]] = (),
        sweep_jobs: bool = True,
        processes: int = 1,
    ) -> None:
        self._settings = settings
        self._host = host
        self._port = port
        # A socket bound by the caller (one of several worker processes sharing a port),
        # served instead of binding host:port here.
        self._sock = sock
        # Sent on every answer by uvicorn itself, so they cost the request path nothing.
        self._headers = list(headers)
        # Whether this process sweeps unfinished media jobs (one process of several does).
        self._sweep_jobs = sweep_jobs
        # How many processes serve these settings together (in-process budgets are split).
        self._processes = processes
        # The process's redactor when the composition root hands one down (so its logging
        # masks what this server learns), else one of this server's own.
        self._redactor = redactor if redactor is not None else Redactor()
        self._redactor.add(settings.master_key)
        for value in settings.env_keys.values():
            self._redactor.add(value)
        self._keys = KeyServices(settings, self._redactor)
        self._server: _Server | None = None
        # Pooled direct provider connections for the fast path (made in start()).
        self._transport: Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._budgets: Budgets | None = None
        # Built in start(): the /metrics series and the tracer.
        self._metrics: ProxyMetrics | None = None
        self._tracing: Tracing | None = None
        self._log = structlog.get_logger("proxy.server")

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def budgets(self) -> Budgets | None:
        """The provider budgets in use once started (their store says where they live)."""
        return self._budgets

    @property
    def metrics(self) -> ProxyMetrics | None:
        """The proxy's Prometheus series once started (`observe_queue` for the budgets)."""
        return self._metrics

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
        from litellm.proxy.shutdown.graceful_shutdown_manager import (  # noqa: PLC0415
            GracefulShutdownManager,
        )

        # Otherwise LiteLLM prints a feedback banner to stdout on every provider error.
        litellm.suppress_debug_info = True
        # LiteLLM's draining flag is process-wide and set when its app shuts down: a server
        # started after another stopped in this process would answer its health probes 503.
        GracefulShutdownManager.reset()

        from proxy.fastpath import GatewayApp  # noqa: PLC0415 - imports litellm
        from proxy.image_urls import ImageUrls  # noqa: PLC0415

        # The gateway database (identities, provider keys) and what is built over it.
        await self._keys.start()
        keys = self._keys.resolver
        from proxy.accounting import PriceBook, served_models  # noqa: PLC0415 - reads litellm's map
        from proxy.observe import AttemptRecorder, ObservedApp  # noqa: PLC0415

        # Accounting and observability: /metrics, spans, cost and latency of every answer.
        metrics = self._metrics = ProxyMetrics(
            self._settings.metrics, master_key=self._settings.master_key
        )
        tracing = self._tracing = Tracing(self._settings.tracing)
        prices = PriceBook.build(served_models(self._settings.routing), self._settings.prices)
        recorder = AttemptRecorder(metrics, tracing, self._redactor)
        b = self._settings.budgets
        # Provider budgets: in Redis (shared by every process) when reachable, else here.
        self._budgets = await open_budgets(
            b.limits,
            redis_url=b.redis_url,
            namespace=b.namespace,
            queue_capacity=b.queue_capacity,
            # A lease outlives the longest attempt; only a dead process's lease expires.
            lease_ttl_s=self._settings.resilience.request_timeout_s + 30,
            processes=self._processes,
        )
        gate = BudgetGate(self._budgets, max_queue_wait_s=b.max_queue_wait_s, observer=metrics)
        resilience = Resilience(
            self._settings.resilience,
            keys,
            redactor=self._redactor,
            budgets=gate,
            observer=recorder,
        )
        from proxy.contract import RequestContract  # noqa: PLC0415 - compiles the schemas

        # The OpenAI contract, compiled once and shared by every route checking requests.
        contract, limits = RequestContract(), self._settings.limits
        from proxy.media import MediaApp  # noqa: PLC0415 - loads the media plugins

        # Image task routes, ahead of LiteLLM's; the fast path's authenticator reaches them.
        media = MediaApp.from_config(
            proxy_server.app,
            config_path=self._settings.config_path,
            routing=self._settings.routing,
            resilience=resilience,
            redactor=self._redactor,
            database=self._keys.database,
            sweep_jobs=self._sweep_jobs,
            contract=contract,
            max_body_bytes=limits.max_body_bytes,
            max_form_bytes=limits.max_form_bytes,
        )
        from proxy.embeddings import EmbeddingsApp  # noqa: PLC0415 - loads the plugins

        # /v1/embeddings for tasks served by in-process models, ahead of LiteLLM's route.
        embeddings = EmbeddingsApp.from_config(
            media,
            config_path=self._settings.config_path,
            routing=self._settings.routing,
            redactor=self._redactor,
            contract=contract,
            max_body_bytes=limits.max_body_bytes,
            prices=prices,
        )
        from proxy.transport import Transport  # noqa: PLC0415 - imports litellm

        self._transport = Transport(self._redactor, max_connections=limits.max_upstream_connections)
        await self._transport.start()
        from proxy.openapi import (  # noqa: PLC0415
            OpenApiRoute,
            build_document,
            chat_tasks,
            served_tasks,
        )

        # What each route serves: GET /gateway/openapi.json (public, as such documents are)
        # describes it. The fast path refuses chat only for tasks no provider can chat with
        # (the image-only Vertex tasks); in-process models with a chat handler (ONNX faces
        # and masks) keep serving it.
        served = served_tasks(
            self._settings.routing,
            media,
            embeddings,
            config_path=self._settings.config_path,
            key_routes=self._keys.records is not None,
            artifact_links=self._settings.artifacts.signing_key is not None,
        )
        app = GatewayApp(
            embeddings,
            chat_tasks=frozenset(chat_tasks(self._settings.routing, self._settings.config_path)),
            transport=self._transport,
            routing=self._settings.routing,
            authenticator=self._keys.authenticator,
            resilience=resilience,
            request_timeout_s=self._settings.resilience.request_timeout_s,
            redactor=self._redactor,
            contract=contract,
            max_body_bytes=limits.max_body_bytes,
            prices=prices,
            image_urls=ImageUrls(self._settings.image_urls),
        )
        # Signed artifact links need no gateway key: ahead of the key routes and the fast path.
        # The process sweeping media jobs also collects artifacts past retention.
        links = ArtifactLinks(
            self._keys.mount(app),
            self._settings.artifacts,
            redactor=self._redactor,
            sweep=self._sweep_jobs,
        )
        config = uvicorn.Config(
            # Outermost: latency is measured from arrival, and /metrics answers ahead of all.
            ObservedApp(
                OpenApiRoute(links, build_document(served)),
                metrics=metrics,
                tracing=tracing,
            ),
            host=self._host,
            port=self._port,
            loop="none",
            # httptools when installed (markedly less CPU per request than h11), else h11.
            http="auto",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            headers=self._headers,
        )
        self._server = _Server(config)
        sockets = [self._sock] if self._sock is not None else None
        self._task = asyncio.create_task(self._server.serve(sockets=sockets))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("proxy server exited during start-up")
            await asyncio.sleep(0.05)
        if self._port == 0:
            bound = self._server.servers[0].sockets
            self._port = int(bound[0].getsockname()[1])
        self._log.info("proxy_started", url=self.url, tasks=self._settings.routing.tasks())

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._server = None
            self._task = None
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
        if self._tracing is not None:
            self._tracing.shutdown()
            self._tracing = None
        if self._budgets is not None:
            await self._budgets.stop()
            self._budgets = None
        await self._keys.stop()
        self._log.info("proxy_stopped")
