"""`POST /v1/images/generations` and `/v1/images/edits` (multipart) for the image task groups,
ahead of LiteLLM's own routes (and, through `proxy.media.training`, the fine-tuning routes).

Why it exists: LiteLLM drops `n`, `size` and `response_format` (and an edit's `mask`) before a
custom provider sees them and has no queue-based Fal path, so the gateway serves image tasks
itself, as it serves task chat completions: the same authenticator (left in the ASGI scope by
the chat fast path), the routing table, the one retry/fallback policy (`proxy.resilience`), and
provider plugins named in `gateway_settings.media.providers`. Any model that is not such a
task, and every other route, falls through to LiteLLM untouched.

Order of a request: authenticate; validate with every provider of the task (a precise 400
before any provider call, nothing charged); run the chain. One job per deployment lives across
attempts, so a retry after a failed status poll resumes the job rather than paying for another;
when the client disconnects or its deadline passes, the jobs still running are cancelled.
The cost (configured prices x billed megapixels or images; per-image prices from LiteLLM's cost
map for models the config does not price) is sent in `x-gateway-cost-usd`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import orjson
import structlog

from core.http import TIMEOUT_HEADER, parse_timeout
from core.redact import Redactor
from database import Database
from proxy.accounting import COST_HEADER, priced, record_cost
from proxy.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    authenticate,
    guarded,
    header,
    limited,
    read_body,
    replay,
    send_error,
    send_json,
    unless_disconnected,
)
from proxy.contract import RequestContract
from proxy.errors import (
    DeadlineExceededError,
    ExternalServiceError,
    InvalidRequestError,
)
from proxy.lifecycle import with_lifespan
from proxy.media.errors import translated
from proxy.media.incoming import Incoming, read_edit, read_generation
from proxy.media.jobs import JobBook
from proxy.media.pricing import configure_providers, with_mapped_prices
from proxy.media.providers import ImageProvider, load_providers
from proxy.media.settings import MediaSettings, load_media_settings
from proxy.media.training import TrainingRoutes
from proxy.media.videos import VideoRoutes
from proxy.resilience import Outcome, Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute

__all__ = ["COST_HEADER", "MediaApp"]

_GENERATIONS = frozenset({"/v1/images/generations", "/images/generations"})
_EDITS = frozenset({"/v1/images/edits", "/images/edits"})
_TIMEOUT_HEADER = TIMEOUT_HEADER.encode()


class MediaApp:
    """ASGI wrapper serving image generation for the tasks whose providers have a plugin."""

    def __init__(
        self,
        inner: ASGIApp,
        *,
        routing: RoutingTable,
        resilience: Resilience,
        settings: MediaSettings,
        providers: Mapping[str, ImageProvider],
        redactor: Redactor | None = None,
        database: Database | None = None,
        sweep_jobs: bool = True,
        contract: RequestContract | None = None,
        max_body_bytes: int | None = None,
        max_form_bytes: int | None = None,
    ) -> None:
        self._inner = inner
        self._contract = contract if contract is not None else RequestContract()
        # Request size limits: JSON bodies, multipart forms (None: unlimited).
        self._max_body_bytes = max_body_bytes
        self._max_form_bytes = max_form_bytes
        self._routing = routing
        self._resilience = resilience
        self._settings = settings
        self._providers = dict(providers)
        self._redactor = redactor if redactor is not None else Redactor()
        self._log = structlog.get_logger("proxy.media")
        # Training and video jobs, kept in the gateway database (`proxy.media.jobs`).
        self._book = JobBook(
            database=database,
            routing=routing,
            resilience=resilience,
            providers=self._providers,
            redactor=self._redactor,
            sweep=sweep_jobs,
        )
        self._training = TrainingRoutes(
            contract=self._contract,
            routing=routing,
            resilience=resilience,
            settings=settings,
            providers=self._providers,
            redactor=self._redactor,
            book=self._book,
        )
        self._videos = VideoRoutes(
            routing=routing,
            resilience=resilience,
            settings=settings,
            providers=self._providers,
            redactor=self._redactor,
            book=self._book,
        )

    @classmethod
    def from_config(
        cls,
        inner: ASGIApp,
        *,
        config_path: str,
        routing: RoutingTable,
        resilience: Resilience,
        redactor: Redactor,
        database: Database | None = None,
        sweep_jobs: bool = True,
        contract: RequestContract | None = None,
        max_body_bytes: int | None = None,
        max_form_bytes: int | None = None,
    ) -> MediaApp:
        settings = load_media_settings(config_path)
        providers = load_providers(settings.providers)
        configure_providers(providers, routing)
        return cls(
            inner,
            routing=routing,
            resilience=resilience,
            settings=with_mapped_prices(settings, routing, providers),
            providers=providers,
            redactor=redactor,
            database=database,
            sweep_jobs=sweep_jobs,
            contract=contract,
            max_body_bytes=max_body_bytes,
            max_form_bytes=max_form_bytes,
        )

    async def start(self) -> None:
        for provider in self._providers.values():
            await provider.start()
        await self._book.start()

    async def stop(self) -> None:
        await self._book.stop()
        for provider in self._providers.values():
            await provider.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._inner(scope, with_lifespan(receive, self.start, self.stop), send)
            return
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        # The gateway's own failures: logged in detail, answered 500 with a correlation id.
        await guarded(self._http, scope, receive, send, self._redactor)

    def _max_bytes(self, scope: Scope) -> int | None:
        content_type = header(scope, b"content-type") or ""
        form = content_type.startswith("multipart/form-data")
        return self._max_form_bytes if form else self._max_body_bytes

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The routes reading their bodies themselves (forms, jobs) meet the size limit too.
        bounded = limited(scope, receive, self._max_bytes(scope))
        if await self._training.handle(scope, bounded, send) or await self._videos.handle(
            scope, bounded, send
        ):
            return
        path = scope.get("path")
        if scope["method"] != "POST" or path not in _GENERATIONS | _EDITS:
            await self._inner(scope, receive, send)
            return
        try:
            body = await read_body(receive, scope=scope, max_bytes=self._max_bytes(scope))
            incoming = (
                read_generation(body) if path in _GENERATIONS else await read_edit(scope, body)
            )
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        route = self._routing.get(incoming.model) if incoming.model is not None else None
        if route is None or not self._serves(route, incoming.needs):
            if path in _EDITS:
                # Every model group is a task, so LiteLLM could serve no other edit; it would
                # answer FastAPI's 422 shape instead of OpenAI's, so the refusal is made here.
                await self._refuse_edit(scope, send, incoming.model)
                return
            await self._inner(scope, replay(body, receive), send)
            return
        try:
            user_id = await authenticate(scope)
            parsed = self._validate(route, incoming)
            if incoming.fields is not None:
                # After the providers' own checks (stricter where they overlap, e.g. `n`): the
                # OpenAI schema for the rest, unknown fields included.
                self._contract.image_generation(incoming.fields)
            if incoming.form_names is not None:
                self._contract.image_edit_form(incoming.form_names)
            deadline = self._deadline(scope)
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        jobs: dict[str, Any] = {}
        with structlog.contextvars.bound_contextvars(task=route.task):
            work = self._generate(
                route, user_id=user_id, parsed=parsed, jobs=jobs, deadline=deadline, send=send
            )
            if await unless_disconnected(receive, work):
                self._log.info("image_generation_abandoned", reason="client_disconnected")
                await self._cancel(route, jobs)

    async def _refuse_edit(self, scope: Scope, send: Send, model: str | None) -> None:
        try:
            await authenticate(scope)
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        edits = ", ".join(self.served_tasks("parse_edit")) or "none"
        message = (
            "'model' is required"
            if model is None
            else f"model '{model[:64]}' is not an image-editing task"
        )
        await self._error(
            send, InvalidRequestError(f"{message} (tasks serving edits: {edits})", param="model")
        )

    def _serves(self, route: TaskRoute, method: str) -> bool:
        return all(hasattr(self._providers.get(d.provider), method) for d in _every(route))

    def served_tasks(self, method: str) -> list[str]:
        """The tasks a media route serves: those every provider of which has `method`
        (`parse`, `parse_edit`, `parse_training`, `parse_video`), for the OpenAPI document."""
        routes = [r for t in self._routing.tasks() if (r := self._routing.get(t)) is not None]
        return [r.task for r in routes if self._serves(r, method)]

    def _validate(self, route: TaskRoute, incoming: Incoming) -> dict[str, Any]:
        """Each provider's parsed request; the first refusal is answered as a 400."""
        parsed: dict[str, Any] = {}
        for deployment in _every(route):
            name = deployment.provider
            if name in parsed:
                continue
            with translated(name, self._redactor, before_call=True):
                parsed[name] = incoming.parse(self._providers[name])
        for deployment in _every(route):
            checker: Any = self._providers[deployment.provider]
            if not hasattr(checker, "check"):
                continue
            with translated(deployment.provider, self._redactor, before_call=True):
                checker.check(
                    parsed[deployment.provider], group=deployment.group, model=deployment.model
                )
        return parsed

    @staticmethod
    def _deadline(scope: Scope) -> float | None:
        budget = header(scope, _TIMEOUT_HEADER)
        if budget is None:
            return None
        try:
            return asyncio.get_running_loop().time() + parse_timeout(budget)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc

    async def _generate(
        self,
        route: TaskRoute,
        *,
        user_id: str | None,
        parsed: Mapping[str, Any],
        jobs: dict[str, Any],
        deadline: float | None,
        send: Send,
    ) -> None:
        started = time.perf_counter()

        async def call(deployment: Deployment, key: str) -> dict[str, Any]:
            provider = self._providers[deployment.provider]
            job = jobs.setdefault(deployment.model, provider.new_job())
            api_base = deployment.params.get("api_base")
            # Providers configured per model group learn which group this attempt is for.
            extra = {"group": deployment.group} if hasattr(provider, "configure") else {}
            with translated(deployment.provider, self._redactor):
                return await provider.generate(
                    job,
                    parsed[deployment.provider],
                    model=deployment.model,
                    api_base=api_base if isinstance(api_base, str) else None,
                    key=key,
                    **extra,
                )

        try:
            outcome = await self._resilience.run(route, user_id, call, deadline=deadline)
        except ExternalServiceError as error:
            if isinstance(error, DeadlineExceededError):
                await self._cancel(route, jobs)
            self._log.warning(
                "image_generation_failed",
                status=error.status_code,
                error_type=type(error).__name__,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            await self._error(send, error)
            return
        headers = _outcome_headers(outcome, route.task)
        cost = self._cost(outcome, parsed[outcome.deployment.provider])
        record_cost(cost)
        if cost is not None:
            headers.append((COST_HEADER.encode(), f"{cost:.6f}".encode()))
        self._log.info(
            "image_generation_served",
            provider=outcome.deployment.provider,
            model=outcome.deployment.model,
            attempts=outcome.total_attempts,
            fallback=outcome.fallback,
            cost_usd=cost,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        await send_json(send, 200, orjson.dumps(outcome.value), headers)

    def _cost(self, outcome: Outcome[Any], request: Any) -> float | None:
        deployment = outcome.deployment
        price = self._settings.prices.get(deployment.model)
        if price is None:
            return None
        provider: Any = self._providers[deployment.provider]
        if price.per_image is not None:
            if hasattr(provider, "billed_images"):
                count = int(provider.billed_images(request, deployment.model))
            else:
                count = len(outcome.value.get("data") or ())
            return priced(price.per_image, count)
        if price.per_megapixel is None:
            return None
        return priced(price.per_megapixel, int(provider.billed_megapixels(request)))

    async def _cancel(self, route: TaskRoute, jobs: Mapping[str, Any]) -> None:
        by_model = {d.model: d.provider for d in _every(route)}
        for model, job in jobs.items():
            await self._providers[by_model[model]].cancel(job)

    async def _error(self, send: Send, error: ExternalServiceError) -> None:
        await send_error(send, error, self._redactor)


def _every(route: TaskRoute) -> tuple[Deployment, ...]:
    """Every deployment that may serve the route: its chain and its content-policy fallbacks
    (validated up front like the rest, so a refusal's fallback never meets a bad request)."""
    return (*route.deployments, *route.content_policy_deployments)


def _outcome_headers(outcome: Outcome[Any], task: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-gateway-task", task.encode()),
        (b"x-gateway-provider", outcome.deployment.provider.encode()),
        (b"x-gateway-model", outcome.deployment.model.encode()),
        (b"x-gateway-attempts", str(outcome.total_attempts).encode()),
        (b"x-gateway-fallback", b"true" if outcome.fallback else b"false"),
    ]
