"""The fast path: chat completions for the configured tasks, in front of LiteLLM's proxy app.

Why it exists: LiteLLM's proxy pipeline costs ~10 ms of CPU per request and its router's retry
semantics differ from the gateway's policy. This ASGI wrapper serves POST /v1/chat/completions
(and /chat/completions) for the task groups itself: authenticate, parse, look the task up in
the routing table, and call the provider per attempt under `proxy.resilience`: through the
direct transport (`proxy.transport`) when it owns the request, else `litellm.acompletion`. Any
other route, and any model name that is not a task, falls through to LiteLLM's app untouched.

A request's `x-gateway-timeout-ms` (see `core.http`) becomes its deadline, and the request is
abandoned when the client goes away (ASGI `http.disconnect`): in both cases the provider call in
flight is cancelled, so nobody pays for an answer no one will read. Every error body leaves
through the process's redactor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import litellm
import orjson
import structlog

from core.http import TIMEOUT_HEADER, parse_timeout
from core.redact import Redactor
from proxy.accounting import (
    PriceBook,
    RequestLedger,
    count_images,
    current_ledger,
    served_models,
)
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
    send_json,
    unless_disconnected,
)
from proxy.auth import STATE_KEY, Authenticator
from proxy.budgeting import PRIORITY_HEADER, Demand, demand_of
from proxy.contract import RequestContract
from proxy.errors import DeadlineExceededError, ExternalServiceError, InvalidRequestError
from proxy.limits import Limits, LimitViolation, fan_out
from proxy.resilience import Outcome, Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute
from proxy.tracing import outgoing_headers
from proxy.transport import Transport
from proxy.upstream import translate
from proxy.usage import StreamUsage, usage_tokens, with_usage

__all__ = ["GatewayApp"]


_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_TIMEOUT_HEADER = TIMEOUT_HEADER.encode()
_PRIORITY_HEADER = PRIORITY_HEADER.encode()
# The OpenAI chat-completion parameters clients may set. Everything else is dropped: LiteLLM
# accepts call-level overrides such as `base_url` or `api_base`, and forwarding those from a
# client would send our provider key wherever the client pointed it.
_CLIENT_PARAMS = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "n",
        "stream",
        "stream_options",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "response_format",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
    }
)
_JSON_OBJECT = {"type": "json_object"}
_ANY_OBJECT_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "json_object", "schema": {"type": "object"}},
}


def _outcome_headers(
    outcome: Outcome[Any], task: str, reason: LimitViolation | None = None
) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-gateway-task", task.encode()),
        (b"x-gateway-provider", outcome.deployment.provider.encode()),
        (b"x-gateway-model", outcome.deployment.model.encode()),
        (b"x-gateway-attempts", str(outcome.total_attempts).encode()),
        (b"x-gateway-fallback", b"true" if outcome.fallback or reason else b"false"),
    ]
    if reason is not None:
        # The primary's limit that moved the request to a fallback (`proxy.limits`).
        headers.append((b"x-gateway-fallback-reason", str(reason).encode("ascii", "replace")))
    return headers


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
    ) -> None:
        self._inner = inner
        # The tasks whose every provider can answer a chat completion; None: all of them. An
        # image-only task asked for chat is the caller's mistake, refused before any call.
        self._chat_tasks = chat_tasks
        # Token prices of every deployment, resolved at start-up (`proxy.accounting`).
        self._prices = prices if prices is not None else PriceBook.build(served_models(routing), {})
        # Direct provider calls for the requests it owns; None: all go through LiteLLM.
        self._transport = transport
        self._routing = routing
        # Every deployment's limits, computed here once (LiteLLM's model info), never per request.
        self._limits = limits if limits is not None else Limits.from_routing(routing)
        self._auth = authenticator
        self._resilience = resilience
        self._timeout = request_timeout_s
        self._redactor = redactor if redactor is not None else Redactor()
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
            deadline = None if budget is None else _loop_time() + parse_timeout(budget)
        except ValueError as exc:
            await self._error(send, InvalidRequestError(str(exc)))
            return
        params = {k: v for k, v in request.items() if k in _CLIENT_PARAMS}
        try:
            # Before any provider call: only the deployments able to take the request serve it.
            narrowed = self._limits.narrow(route, params)
            # What each attempt asks of its provider's budget (tokens, priority).
            demand = demand_of(header(scope, _PRIORITY_HEADER), params)
        except ExternalServiceError as error:
            await self._error(send, error)
            return
        route, reason = narrowed.route, narrowed.reason
        if reason is not None:
            structlog.get_logger("proxy.fastpath").info(
                "chat_completion_narrowed", task=route.task, reason=str(reason)
            )
        with structlog.contextvars.bound_contextvars(task=route.task):
            work = (
                self._stream(route, user_id, params, deadline, send, reason=reason, demand=demand)
                if params.get("stream")
                else self._complete(
                    route, user_id, params, deadline, send, reason=reason, demand=demand
                )
            )
            if await unless_disconnected(receive, work):
                structlog.get_logger("proxy.fastpath").info(
                    "chat_completion_abandoned", task=route.task, reason="client_disconnected"
                )

    def _kwargs(self, deployment: Deployment, key: str, params: dict[str, Any]) -> dict[str, Any]:
        # The attempt's span is current here: the provider's request continues the trace.
        trace = outgoing_headers()
        if trace:
            extra = deployment.params.get("extra_headers")
            trace = {**extra, **trace} if isinstance(extra, dict) else trace
        return {
            # Config-level params are defaults a client may override; model and api_base
            # cannot be overridden since clients never send them through _CLIENT_PARAMS.
            **deployment.params,
            **_adapt(deployment, params),
            "api_key": key,
            "num_retries": 0,
            "timeout": self._timeout,
            "drop_params": True,
            # LiteLLM's proxy registers its own router/budget callbacks globally; they serve its
            # pipeline, not this one, and cost CPU per call. The gateway logs for itself.
            "no-log": True,
            **({"extra_headers": trace} if trace else {}),
        }

    def _account(
        self, deployment: Deployment, tokens: tuple[int, int] | None, params: dict[str, Any]
    ) -> float | None:
        """The answer's cost, recorded with its tokens in the request's ledger."""
        prompt, completion = tokens if tokens is not None else (0, 0)
        per_image = self._prices.wants_images(deployment.model)
        images = count_images(params.get("messages")) if per_image else 0
        cost = (
            self._prices.chat_cost(deployment.model, prompt, completion, images)
            if tokens is not None
            else None
        )
        ledger = current_ledger()
        if ledger is not None:
            ledger.prompt_tokens += prompt
            ledger.completion_tokens += completion
            ledger.cost_usd = cost
        return cost

    def _direct(self, deployment: Deployment, params: dict[str, Any]) -> dict[str, Any] | None:
        """The request's params when the direct transport serves it on `deployment`."""
        if self._transport is None:
            return None
        adapted = _adapt(deployment, params)
        return adapted if self._transport.owns(deployment, adapted) else None

    async def _complete(
        self,
        route: TaskRoute,
        user_id: str | None,
        params: dict[str, Any],
        deadline: float | None,
        send: Send,
        *,
        reason: LimitViolation | None = None,
        demand: Demand | None = None,
    ) -> None:
        started = time.perf_counter()
        task = route.task

        async def call(deployment: Deployment, key: str) -> Any:
            copies = self._limits.copies(deployment, params)
            direct = self._direct(deployment, params) if copies == 1 else None
            if direct is not None and self._transport is not None:
                return await self._transport.complete(
                    deployment,
                    key,
                    direct,
                    timeout_s=self._timeout,
                    # The attempt's span is current: the provider's request continues the trace.
                    extra_headers=outgoing_headers() or None,
                )
            kwargs = self._kwargs(deployment, key, params)
            if copies > 1:
                # No native `n` here: n separate calls, merged (`proxy.limits.fan_out`).
                kwargs.pop("n", None)
                return await fan_out(copies, lambda: litellm.acompletion(**kwargs))
            return await litellm.acompletion(**kwargs)

        try:
            outcome = await self._resilience.run(
                route, user_id, call, deadline=deadline, demand=demand
            )
        except ExternalServiceError as error:
            _log_failure(task, error, started)
            await self._error(send, error)
            return
        _log_served(task, outcome, started)
        self._account(outcome.deployment, usage_tokens(outcome.value), params)
        body = _json(outcome.value)
        await send_json(send, 200, body, _outcome_headers(outcome, task, reason))

    async def _stream(
        self,
        route: TaskRoute,
        user_id: str | None,
        params: dict[str, Any],
        deadline: float | None,
        send: Send,
        *,
        reason: LimitViolation | None = None,
        demand: Demand | None = None,
    ) -> None:
        started = time.perf_counter()
        task = route.task
        # The provider is always asked for the stream's usage (the cost needs it); the client
        # sees it only if it asked (`proxy.usage`).
        tally = StreamUsage(StreamUsage.client_asked(params))
        params = with_usage(params)

        async def call(deployment: Deployment, key: str) -> tuple[Any, AsyncIterator[Any]]:
            direct = self._direct(deployment, params)
            if direct is not None and self._transport is not None:
                iterator = self._transport.stream(
                    deployment,
                    key,
                    direct,
                    timeout_s=self._timeout,
                    extra_headers=outgoing_headers() or None,
                ).__aiter__()
            else:
                stream = await litellm.acompletion(**self._kwargs(deployment, key, params))
                iterator = stream.__aiter__()
            # Pull the first chunk inside the attempt: until it has arrived nothing has been
            # sent to the client, so failures are still retried or moved to a fallback.
            try:
                first = await iterator.__anext__()
            except BaseException:
                await _close(iterator)
                raise
            return first, iterator

        try:
            outcome = await self._resilience.run(
                route, user_id, call, deadline=deadline, demand=demand
            )
        except ExternalServiceError as error:
            _log_failure(task, error, started)
            await self._error(send, error)
            return
        _log_served(task, outcome, started)
        first, iterator = outcome.value
        ledger = current_ledger()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    *_outcome_headers(outcome, task, reason),
                ],
            }
        )
        try:
            # The deadline bounds the whole answer, not only the wait for its first chunk.
            async with asyncio.timeout_at(deadline):
                await _relay(send, first, iterator, tally, ledger)
            cost = self._account(outcome.deployment, tally.tokens, params)
            await send(
                {
                    "type": "http.response.body",
                    "body": tally.final_chunk(ledger, cost),
                    "more_body": True,
                }
            )
        except Exception as exc:
            # After the first chunk nothing can be retried: end the stream with an error event.
            failure = (
                DeadlineExceededError(task, [])
                if isinstance(exc, TimeoutError)
                and deadline is not None
                and _loop_time() >= deadline
                else translate(exc, outcome.deployment.provider, self._redactor)
            )
            structlog.get_logger("proxy.fastpath").warning(
                "stream_failed_midway", provider=failure.provider, error=failure.message
            )
            body = self._redactor.scrub_bytes(orjson.dumps(failure.to_openai_body()))
            payload = b"data: " + body + b"\n\n"
            await send({"type": "http.response.body", "body": payload, "more_body": True})
        finally:
            # Also on client disconnect: release the provider connection now, not at GC time.
            await _close(iterator)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _relay(
    send: Send,
    first: Any,
    iterator: AsyncIterator[Any],
    tally: StreamUsage,
    ledger: RequestLedger | None,
) -> None:
    """Send the stream's chunks as they come, but its usage chunk (`proxy.usage`)."""
    chunk: Any = first
    while True:
        if not tally.hold(chunk):
            await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        waited = time.perf_counter()
        try:
            chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        finally:
            if ledger is not None:
                # Waiting for the provider's next chunk is upstream time too.
                ledger.upstream_s += time.perf_counter() - waited


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _log_served(task: str, outcome: Outcome[Any], started: float) -> None:
    structlog.get_logger("proxy.fastpath").info(
        "chat_completion_served",
        task=task,
        provider=outcome.deployment.provider,
        model=outcome.deployment.model,
        attempts=outcome.total_attempts,
        fallback=outcome.fallback,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _log_failure(task: str, error: ExternalServiceError, started: float) -> None:
    structlog.get_logger("proxy.fastpath").warning(
        "chat_completion_failed",
        task=task,
        status=error.status_code,
        error_type=type(error).__name__,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def _adapt(deployment: Deployment, params: dict[str, Any]) -> dict[str, Any]:
    """Keep OpenAI request semantics where a provider lacks the feature natively."""
    if deployment.provider == "anthropic" and params.get("response_format") == _JSON_OBJECT:
        # Anthropic has no JSON mode and LiteLLM silently drops json_object for it; a schema
        # that admits any object makes LiteLLM force a JSON tool call instead.
        return {**params, "response_format": _ANY_OBJECT_SCHEMA}
    return params


def _json(value: Any) -> bytes:
    # The direct transport answers with dicts, LiteLLM with pydantic objects.
    return orjson.dumps(value if isinstance(value, dict) else value.model_dump())


def _sse(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, dict):
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
    text: str = chunk.model_dump_json(exclude_none=True)
    return b"data: " + text.encode() + b"\n\n"
