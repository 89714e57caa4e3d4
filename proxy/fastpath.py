"""The fast path: chat completions for the configured tasks, in front of LiteLLM's proxy app.

Why it exists: LiteLLM's proxy pipeline costs ~10 ms of CPU per request and its router's retry
semantics differ from the gateway's policy. This ASGI wrapper serves POST /v1/chat/completions
(and /chat/completions) for the task groups itself: authenticate, parse, check the OpenAI
contract, look the task up in the routing table, keep the deployments able to take the request
(`proxy.limits`), and hand it to the answer: `proxy.chat_answer` (whole) or `proxy.chat_stream`
(streamed), which call the provider per attempt under `proxy.resilience` with the client's
parameters of `proxy.chat_params`. Any other route, and any model name that is not a task,
falls through to LiteLLM's app untouched.

A request's `x-gateway-timeout-ms` (see `core.http`) becomes its deadline, and the request is
abandoned when the client goes away (ASGI `http.disconnect`): in both cases the provider call in
flight is cancelled, so nobody pays for an answer no one will read. Every error body leaves
through the process's redactor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog

from core.http import TIMEOUT_HEADER, parse_timeout
from core.redact import Redactor
from proxy.accounting import PriceBook, current_ledger, served_models
from proxy.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    guarded,
    header,
    read_body,
    replay,
    send_error,
    unless_disconnected,
)
from proxy.auth import STATE_KEY, Authenticator
from proxy.budgeting import PRIORITY_HEADER, demand_of
from proxy.chat_answer import LOGGER, ChatCalls, complete, loop_time
from proxy.chat_params import client_params
from proxy.chat_stream import stream
from proxy.contract import RequestContract
from proxy.errors import DeadlineExceededError, ExternalServiceError, InvalidRequestError
from proxy.image_urls import ImageUrls
from proxy.limits import Limits
from proxy.resilience import Resilience
from proxy.routing import RoutingTable, TaskRoute
from proxy.transport import Transport

__all__ = ["GatewayApp"]


_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_TIMEOUT_HEADER = TIMEOUT_HEADER.encode()
_PRIORITY_HEADER = PRIORITY_HEADER.encode()


class GatewayApp:
    """ASGI app: the fast path around LiteLLM's proxy app."""

    def __init__(
        self,
        inner: ASGIApp,
        *,
        routing: RoutingTable,
        authenticator: Authenticator,
        resilience: Resilience,
        request_timeout_s: float,
        redactor: Redactor | None = None,
        contract: RequestContract | None = None,
        max_body_bytes: int | None = None,
        limits: Limits | None = None,
        transport: Transport | None = None,
        prices: PriceBook | None = None,
        chat_tasks: frozenset[str] | None = None,
        image_urls: ImageUrls | None = None,
    ) -> None:
        self._inner = inner
        # A request's http(s) images, fetched once through the guarded fetcher before any call.
        self._image_urls = image_urls if image_urls is not None else ImageUrls()
        # The tasks whose every provider can answer a chat completion; None: all of them. An
        # image-only task asked for chat is the caller's mistake, refused before any call.
        self._chat_tasks = chat_tasks
        self._routing = routing
        # Every deployment's limits, computed here once (LiteLLM's model info), never per request.
        self._limits = limits if limits is not None else Limits.from_routing(routing)
        self._auth = authenticator
        self._redactor = redactor if redactor is not None else Redactor()
        # What every answer needs (`proxy.chat_answer`): the retry loop, the limits, the token
        # prices of every deployment resolved at start-up (`proxy.accounting`), and the direct
        # transport for the requests it owns (None: all go through LiteLLM).
        self._calls = ChatCalls(
            resilience=resilience,
            limits=self._limits,
            prices=prices if prices is not None else PriceBook.build(served_models(routing), {}),
            redactor=self._redactor,
            timeout_s=request_timeout_s,
            transport=transport,
        )
        # The OpenAI contract, compiled once; every task request is checked before any call.
        self._contract = contract if contract is not None else RequestContract()
        self._max_body_bytes = max_body_bytes

    async def _error(self, send: Send, error: ExternalServiceError) -> None:
        await send_error(send, error, self._redactor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        # The gateway's own failures: logged in detail, answered 500 with a correlation id.
        await guarded(self._http, scope, receive, send, self._redactor)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # LiteLLM's custom_auth hook finds the same Authenticator through request.state.
        scope.setdefault("state", {})[STATE_KEY] = self._auth
        if scope["method"] != "POST" or scope["path"] not in _CHAT_PATHS:
            await self._inner(scope, receive, send)
            return
        headers = scope.get("headers", ())
        try:
            identity = await self._auth.authenticate_headers(headers)
            # The user whose keys pay: the gateway key's own, never a field of the request.
            user_id = self._auth.acting_user(identity, headers)
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        try:
            body = await read_body(receive, scope=scope, max_bytes=self._max_body_bytes)
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            await self._error(send, InvalidRequestError("request body is not valid JSON"))
            return
        model = request.get("model") if isinstance(request, dict) else None
        route = self._routing.get(model) if isinstance(model, str) else None
        if route is None:
            await self._inner(scope, replay(body, receive), send)
            return
        if (ledger := current_ledger()) is not None:
            ledger.task = route.task
        if self._chat_tasks is not None and route.task not in self._chat_tasks:
            await self._error(
                send,
                InvalidRequestError(
                    f"task '{route.task}' does not serve chat completions "
                    "(it is an image, video or training task: use its own route)",
                    param="model",
                ),
            )
            return
        await self._serve(scope, receive, send, route, request, user_id=user_id)

    async def _inline(
        self, route: TaskRoute, params: dict[str, Any], deadline: float | None
    ) -> list[Any] | None:
        """The messages with their http(s) images fetched (None: they name none), within the
        caller's deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._image_urls.inline(params.get("messages"))
        except TimeoutError:
            raise DeadlineExceededError(route.task, ()) from None

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: TaskRoute,
        request: Any,
        *,
        user_id: str | None,
    ) -> None:
        """Serve a parsed request for one of the tasks: until answered, or the client left."""
        try:
            # The OpenAI contract (schema, then conversation rules) before anything is paid for.
            self._contract.chat(request)
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        budget = header(scope, _TIMEOUT_HEADER)
        try:
            deadline = None if budget is None else loop_time() + parse_timeout(budget)
        except ValueError as exc:
            await self._error(send, InvalidRequestError(str(exc)))
            return
        params = client_params(request)
        try:
            # Before any provider call: only the deployments able to take the request serve it.
            narrowed = self._limits.narrow(route, params)
            # Counted and refused by the limits above before any is fetched; once fetched, the
            # images' own sizes are checked as a data URL's would be.
            if (inlined := await self._inline(route, params, deadline)) is not None:
                params = {**params, "messages": inlined}
                narrowed = self._limits.narrow(route, params)
            # What each attempt asks of its provider's budget (tokens, priority).
            demand = demand_of(header(scope, _PRIORITY_HEADER), params)
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        route, reason = narrowed.route, narrowed.reason
        if reason is not None:
            structlog.get_logger(LOGGER).info(
                "chat_completion_narrowed", task=route.task, reason=str(reason)
            )
        with structlog.contextvars.bound_contextvars(task=route.task):
            answer = stream if params.get("stream") else complete
            work = answer(
                self._calls,
                route,
                params,
                send,
                user_id=user_id,
                deadline=deadline,
                reason=reason,
                demand=demand,
            )
            if await unless_disconnected(receive, work):
                structlog.get_logger(LOGGER).info(
                    "chat_completion_abandoned", task=route.task, reason="client_disconnected"
                )
