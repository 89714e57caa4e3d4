"""`POST /v1/embeddings` for the embedding tasks served by an in-process plugin (self-hosted
models), ahead of LiteLLM's own route.

Why it exists: LiteLLM's proxy pipeline costs ~10 ms of CPU per request, more than embedding a
short sentence, so a task whose provider has an embeddings plugin (named in
`gateway_settings.embeddings.providers`, loaded by path: the proxy imports no plugin) is served
here with the chat fast path's authentication. Every other model, and every other route, falls
through to LiteLLM untouched.

The request is the OpenAI one: `input` a string or a list of strings (token arrays are refused
with a 400 naming `input`: the tokenizer belongs to the model), `encoding_format` "float" or
"base64" (little-endian float32, the official SDK's default). `usage.prompt_tokens` counts the
tokens the model read; texts cut at the model's maximum length are listed in `truncated` and
counted in `x-gateway-truncated-inputs`. A model that is busy answers 429 with Retry-After.
The model runs in this process, so there is no provider to retry or fall back to: the task's
first deployment serves it.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np
import orjson
import structlog

from core.config import ConfigError, load_section, read_config_file
from core.http import TIMEOUT_HEADER, parse_timeout
from core.redact import Redactor
from proxy.accounting import PriceBook, current_ledger
from proxy.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    authenticate,
    guarded,
    header,
    read_body,
    replay,
    send_error,
    send_json,
    unless_disconnected,
)
from proxy.contract import RequestContract
from proxy.errors import DeadlineExceededError, ExternalServiceError, InvalidRequestError
from proxy.lifecycle import with_lifespan
from proxy.routing import Deployment, RoutingTable

__all__ = ["EmbeddingsApp", "EmbeddingsProvider", "EmbeddingsSettings"]

_PATHS = frozenset({"/v1/embeddings", "/embeddings"})
_TIMEOUT_HEADER = TIMEOUT_HEADER.encode()
TRUNCATED_HEADER = "x-gateway-truncated-inputs"
# OpenAI's own limit on inputs per request.
MAX_INPUTS = 2048


class EmbeddingsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # provider (a model name's part before '/') -> "module:attribute" of a class built with the
    # config file's path.
    providers: Mapping[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        for provider, factory in self.providers.items():
            if ":" not in factory:
                raise ValueError(f"providers.{provider} must be 'module:attribute'")


class EmbeddingResult(Protocol):
    @property
    def vectors(self) -> np.ndarray: ...  # float32 [texts, dim]

    @property
    def tokens(self) -> int: ...

    @property
    def truncated(self) -> Sequence[int]: ...


class EmbeddingsProvider(Protocol):
    """What the route needs from a plugin; its errors carry `status_code` and `retriable`
    (plus `param`, `retry_after_s`, `code` when known), like every plugin error root."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def prepare(self, model: str) -> None: ...

    async def embed(self, model: str, texts: Sequence[str]) -> EmbeddingResult: ...


class ModelError(ExternalServiceError):
    """A self-hosted model's error as the client sees it: the plugin's own status, code and
    parameter; a retriable one (a full queue, a model stopping) marks the request retriable."""

    def __init__(self, exc: BaseException, provider: str, redactor: Redactor) -> None:
        message = redactor.scrub(str(getattr(exc, "message", None) or exc))
        status = getattr(exc, "status_code", 500)
        super().__init__(
            message,
            provider=provider,
            status_code=status if isinstance(status, int) else 500,
            retry_after_s=getattr(exc, "retry_after_s", None),
        )
        self._retriable = getattr(exc, "retriable", False) is True
        self._type = str(getattr(exc, "error_type", None) or self.error_type)
        self._code = str(getattr(exc, "code", None) or self.error_code)
        self.param = getattr(exc, "param", None)

    @property
    def type(self) -> str:
        return self._type

    @property
    def code(self) -> str:
        return self._code

    @property
    def chain_retriable(self) -> bool:
        return self._retriable

    def to_openai_body(self) -> dict[str, Any]:
        body = super().to_openai_body()
        body["error"].update(type=self._type, code=self._code, param=self.param)
        return body


class _BadInput(InvalidRequestError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param

    def to_openai_body(self) -> dict[str, Any]:
        body = super().to_openai_body()
        body["error"]["param"] = self.param
        return body


def _is_plugin_error(exc: BaseException) -> bool:
    return isinstance(getattr(exc, "status_code", None), int) and isinstance(
        getattr(exc, "retriable", None), bool
    )


def load_embedding_providers(config_path: str) -> dict[str, EmbeddingsProvider]:
    try:
        settings = load_section(read_config_file(config_path), "embeddings", EmbeddingsSettings)
    except ValueError as exc:
        raise ConfigError(f"gateway_settings.embeddings: {exc}") from exc
    built: dict[str, EmbeddingsProvider] = {}
    for provider, path in settings.providers.items():
        module_name, _, attribute = path.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"gateway_settings.embeddings.providers.{provider}: {exc}") from exc
        built[provider] = factory(Path(config_path))
    return built


def _texts(request: Mapping[str, Any]) -> list[str]:
    value = request.get("input")
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise _BadInput("'input' must be a string or a non-empty list of strings", "input")
    if len(value) > MAX_INPUTS:
        raise _BadInput(f"'input' holds {len(value)} texts; at most {MAX_INPUTS}", "input")
    for index, text in enumerate(value):
        if isinstance(text, str):
            continue
        if isinstance(text, int) or (isinstance(text, list) and text):
            raise _BadInput(
                "'input' holds token ids: this model takes text (strings) only, since its "
                "tokenizer is part of the model",
                "input",
            )
        raise _BadInput(f"'input[{index}]' must be a string", "input")
    return value


def _body(model: str, result: EmbeddingResult, encoding: str) -> bytes:
    vectors = np.ascontiguousarray(result.vectors, dtype="<f4")
    data: list[dict[str, Any]] = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64.b64encode(row.tobytes()).decode() if encoding == "base64" else row,
        }
        for index, row in enumerate(vectors)
    ]
    answer = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
        "truncated": list(result.truncated),
    }
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


class EmbeddingsApp:
    """ASGI wrapper serving `/v1/embeddings` for the tasks whose provider has a plugin."""

    def __init__(
        self,
        inner: ASGIApp,
        *,
        routing: RoutingTable,
        providers: Mapping[str, EmbeddingsProvider],
        redactor: Redactor | None = None,
        contract: RequestContract | None = None,
        max_body_bytes: int | None = None,
        prices: PriceBook | None = None,
    ) -> None:
        self._inner = inner
        # In-process models cost nothing per request unless gateway_settings.prices says.
        self._prices = prices if prices is not None else PriceBook({})
        self._routing = routing
        self._providers = dict(providers)
        self._redactor = redactor if redactor is not None else Redactor()
        self._contract = contract if contract is not None else RequestContract()
        self._max_body_bytes = max_body_bytes
        self._log = structlog.get_logger("proxy.embeddings")

    @classmethod
    def from_config(
        cls,
        inner: ASGIApp,
        *,
        config_path: str,
        routing: RoutingTable,
        redactor: Redactor,
        contract: RequestContract | None = None,
        max_body_bytes: int | None = None,
        prices: PriceBook | None = None,
    ) -> EmbeddingsApp:
        return cls(
            inner,
            routing=routing,
            providers=load_embedding_providers(config_path),
            redactor=redactor,
            contract=contract,
            max_body_bytes=max_body_bytes,
            prices=prices,
        )

    def _deployments(self) -> list[Deployment]:
        found = []
        for task in self._routing.tasks():
            route = self._routing.get(task)
            if route is not None and route.deployments[0].provider in self._providers:
                found.append(route.deployments[0])
        return found

    def served_tasks(self) -> list[str]:
        """The tasks this route serves (for the OpenAPI document)."""
        return [deployment.group for deployment in self._deployments()]

    async def start(self) -> None:
        for provider in self._providers.values():
            await provider.start()
        for deployment in self._deployments():
            try:
                await self._providers[deployment.provider].prepare(deployment.model)
            except Exception as exc:
                if not _is_plugin_error(exc):
                    raise
                # Served as this error (a 503 saying how to build the model) until it loads:
                # the other tasks of the gateway need not wait for it.
                self._log.warning(
                    "embeddings_model_unavailable",
                    task=deployment.group,
                    model=deployment.model,
                    error=self._redactor.scrub(str(exc)),
                )

    async def stop(self) -> None:
        for provider in self._providers.values():
            await provider.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._inner(scope, with_lifespan(receive, self.start, self.stop), send)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in _PATHS:
            await self._inner(scope, receive, send)
            return
        # The gateway's own failures: logged in detail, answered 500 with a correlation id.
        await guarded(self._route, scope, receive, send, self._redactor)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive, scope=scope, max_bytes=self._max_body_bytes)
        except ExternalServiceError as error:
            await send_error(send, error, self._redactor)
            return
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            request = None
        model = request.get("model") if isinstance(request, dict) else None
        route = self._routing.get(model) if isinstance(model, str) else None
        if route is None or route.deployments[0].provider not in self._providers:
            await self._inner(scope, replay(body, receive), send)
            return
        assert isinstance(request, dict)
        deployment = route.deployments[0]
        if (ledger := current_ledger()) is not None:
            ledger.task, ledger.provider = route.task, deployment.provider
            ledger.model, ledger.attempts = deployment.model, 1
        try:
            await authenticate(scope)
            # The gateway's own checks of `input` first: they say why token arrays are refused.
            texts = _texts(request)
            self._contract.embeddings(request)
            encoding = str(request.get("encoding_format") or "float")
            budget = header(scope, _TIMEOUT_HEADER)
            timeout_s = None if budget is None else parse_timeout(budget)
        except ValueError as exc:
            await send_error(send, InvalidRequestError(str(exc)), self._redactor)
            return
        except ExternalServiceError as error:
            await send_error(send, error, self._redactor)
            return
        work = self._serve(deployment, texts, encoding, timeout_s, send)
        with structlog.contextvars.bound_contextvars(task=route.task):
            await unless_disconnected(receive, work)

    async def _serve(
        self,
        deployment: Deployment,
        texts: list[str],
        encoding: str,
        timeout_s: float | None,
        send: Send,
    ) -> None:
        provider = deployment.provider
        ledger = current_ledger()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                result = await self._providers[provider].embed(deployment.model, texts)
        except TimeoutError:
            await send_error(send, DeadlineExceededError(deployment.group, []), self._redactor)
            return
        except Exception as exc:
            if not _is_plugin_error(exc):
                raise
            error = ModelError(exc, provider, self._redactor)
            if error.status_code >= 500:
                self._log.warning(
                    "embeddings_failed", status=error.status_code, error=error.message
                )
            await send_error(send, error, self._redactor)
            return
        finally:
            if ledger is not None:
                # The model's own time (its queue and batch included) counts as upstream.
                ledger.upstream_s += time.perf_counter() - started
        if ledger is not None:
            ledger.prompt_tokens += result.tokens
            ledger.cost_usd = self._prices.chat_cost(deployment.model, result.tokens, 0) or 0.0
        headers = [
            (b"x-gateway-task", deployment.group.encode()),
            (b"x-gateway-provider", provider.encode()),
            (b"x-gateway-model", deployment.model.encode()),
            (TRUNCATED_HEADER.encode(), str(len(result.truncated)).encode()),
        ]
        await send_json(send, 200, _body(deployment.model, result, encoding), headers)
