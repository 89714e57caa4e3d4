"""The fast path: chat completions for the configured tasks, in front of LiteLLM's proxy app.

Why it exists: LiteLLM's proxy pipeline costs ~10 ms of CPU per request and its router's retry
semantics differ from the gateway's policy. This ASGI wrapper serves POST /v1/chat/completions
(and /chat/completions) for the task groups itself: authenticate, parse, look the task up in
the routing table, and run `litellm.acompletion` per attempt under `proxy.resilience`
(LiteLLM's provider adapters still do the wire translation). Any other route, and any model
name that is not a task, falls through to LiteLLM's app untouched.

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
from proxy.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    replay,
    send_error,
    send_json,
    unless_disconnected,
)
from proxy.auth import STATE_KEY, Authenticator
from proxy.errors import DeadlineExceededError, ExternalServiceError, InvalidRequestError
from proxy.resilience import Outcome, Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute
from proxy.upstream import translate

__all__ = ["GatewayApp"]


_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_TIMEOUT_HEADER = TIMEOUT_HEADER.encode()
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


def _outcome_headers(outcome: Outcome[Any], task: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-gateway-task", task.encode()),
        (b"x-gateway-provider", outcome.deployment.provider.encode()),
        (b"x-gateway-model", outcome.deployment.model.encode()),
        (b"x-gateway-attempts", str(outcome.total_attempts).encode()),
        (b"x-gateway-fallback", b"true" if outcome.fallback else b"false"),
    ]


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
    ) -> None:
        self._inner = inner
        self._routing = routing
        self._auth = authenticator
        self._resilience = resilience
        self._timeout = request_timeout_s
        self._redactor = redactor if redactor is not None else Redactor()

    async def _error(self, send: Send, error: ExternalServiceError) -> None:
        await send_error(send, error, self._redactor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
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
        body = await read_body(receive)
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
        if not isinstance(request.get("messages"), list):
            await self._error(send, InvalidRequestError("'messages' must be a list"))
            return
        budget = header(scope, _TIMEOUT_HEADER)
        try:
            deadline = None if budget is None else _loop_time() + parse_timeout(budget)
        except ValueError as exc:
            await self._error(send, InvalidRequestError(str(exc)))
            return
        params = {k: v for k, v in request.items() if k in _CLIENT_PARAMS}
        with structlog.contextvars.bound_contextvars(task=route.task):
            work = (
                self._stream(route, user_id, params, deadline, send)
                if params.get("stream")
                else self._complete(route, user_id, params, deadline, send)
            )
            if await unless_disconnected(receive, work):
                structlog.get_logger("proxy.fastpath").info(
                    "chat_completion_abandoned", task=route.task, reason="client_disconnected"
                )

    def _kwargs(self, deployment: Deployment, key: str, params: dict[str, Any]) -> dict[str, Any]:
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
        }

    async def _complete(
        self,
        route: TaskRoute,
        user_id: str | None,
        params: dict[str, Any],
        deadline: float | None,
        send: Send,
    ) -> None:
        started = time.perf_counter()
        task = route.task

        async def call(deployment: Deployment, key: str) -> Any:
            return await litellm.acompletion(**self._kwargs(deployment, key, params))

        try:
            outcome = await self._resilience.run(route, user_id, call, deadline=deadline)
        except ExternalServiceError as error:
            _log_failure(task, error, started)
            await self._error(send, error)
            return
        _log_served(task, outcome, started)
        body = orjson.dumps(outcome.value.model_dump())
        await send_json(send, 200, body, _outcome_headers(outcome, task))

    async def _stream(
        self,
        route: TaskRoute,
        user_id: str | None,
        params: dict[str, Any],
        deadline: float | None,
        send: Send,
    ) -> None:
        started = time.perf_counter()
        task = route.task

        async def call(deployment: Deployment, key: str) -> tuple[Any, AsyncIterator[Any]]:
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
            outcome = await self._resilience.run(route, user_id, call, deadline=deadline)
        except ExternalServiceError as error:
            _log_failure(task, error, started)
            await self._error(send, error)
            return
        _log_served(task, outcome, started)
        first, iterator = outcome.value
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    *_outcome_headers(outcome, task),
                ],
            }
        )
        try:
            # The deadline bounds the whole answer, not only the wait for its first chunk.
            async with asyncio.timeout_at(deadline):
                await send({"type": "http.response.body", "body": _sse(first), "more_body": True})
                async for chunk in iterator:
                    await send(
                        {"type": "http.response.body", "body": _sse(chunk), "more_body": True}
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


def _sse(chunk: Any) -> bytes:
    text: str = chunk.model_dump_json(exclude_none=True)
    return b"data: " + text.encode() + b"\n\n"
