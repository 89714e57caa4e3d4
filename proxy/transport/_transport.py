"""The direct provider transport: owned providers called without `litellm.acompletion`.

Why it exists: `litellm.acompletion` is most of the fast path's CPU (logging objects, parameter
checks, pydantic responses, cost bookkeeping the gateway does not use). For the providers and
features it transforms faithfully, this transport sends the provider's own wire format over a
pooled connection and returns OpenAI-shaped dicts; `owns()` decides per request, cheaply, and
everything else stays on LiteLLM.

Errors: only `proxy.errors` classes leave it. An HTTP error answer (or an error event inside
a stream) goes through `proxy.upstream.translate_http`, transport failures through
`proxy.upstream.translate` (timeouts: ProviderTimeoutError, connection failures:
ServiceUnavailableError): the policy shared with LiteLLM's exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from core.redact import Redactor
from proxy.errors import ExternalServiceError
from proxy.routing import Deployment
from proxy.transport import anthropic, gemini, openai
from proxy.transport._pool import ClientPool
from proxy.transport._wire import Prepared, StreamError, image_parts_inline, sse_data
from proxy.upstream import translate_http, upstream_errors

__all__ = ["Transport"]

# Deployment params the transport understands; any other (vertex_*, custom options) keeps the
# deployment on LiteLLM, which knows them.
_DEPLOYMENT_PARAMS = frozenset({"model", "api_base", "extra_headers"})
_JSON_FORMATS = frozenset({"text", "json_object", "json_schema"})


class _Transform(Protocol):
    def prepare(self, model: str, base: str, key: str, params: Mapping[str, Any]) -> Prepared: ...

    def response(self, data: dict[str, Any], prepared: Prepared) -> dict[str, Any]: ...


class _Stream(Protocol):
    def __init__(self, prepared: Prepared) -> None: ...

    def feed(self, event: Any) -> list[dict[str, Any]]: ...

    def close(self) -> list[dict[str, Any]]: ...


class _OpenAITransform:
    def prepare(self, model: str, base: str, key: str, params: Mapping[str, Any]) -> Prepared:
        return openai.prepare(model, base, key, params)

    def response(self, data: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
        return openai.response(data, prepared)


class _Provider:
    def __init__(
        self,
        transform: _Transform,
        stream: type[_Stream],
        params: frozenset[str],
        default_base: str,
    ) -> None:
        self.transform = transform
        self.stream = stream
        self.params = params
        self.default_base = default_base


class Transport:
    """Calls the providers it owns directly; owned by the proxy server (`start`/`aclose`)."""

    def __init__(self, redactor: Redactor | None = None, *, max_connections: int = 512) -> None:
        self._redactor = redactor if redactor is not None else Redactor()
        self._pool = ClientPool(max_connections=max_connections)
        self._providers: dict[str, _Provider] = {
            "openai": _Provider(
                _OpenAITransform(), openai.OpenAIStream, openai.PARAMS, openai.DEFAULT_BASE
            ),
            "anthropic": _Provider(
                anthropic.AnthropicTransform(),
                anthropic.AnthropicStream,
                anthropic.PARAMS,
                anthropic.DEFAULT_BASE,
            ),
            "gemini": _Provider(
                gemini.GeminiTransform(), gemini.GeminiStream, gemini.PARAMS, gemini.DEFAULT_BASE
            ),
        }
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        self._pool.start()

    async def aclose(self) -> None:
        await self._pool.aclose()

    def owns(self, deployment: Deployment, params: Mapping[str, Any]) -> bool:
        """Whether this request is served here; False leaves it to `litellm.acompletion`."""
        provider = self._providers.get(deployment.provider)
        if provider is None:
            return False
        for name in deployment.params:
            if name not in _DEPLOYMENT_PARAMS and name not in provider.params:
                return False
        for name in params:
            if name not in provider.params:
                return False
        response_format = params.get("response_format")
        if response_format is not None and (
            not isinstance(response_format, dict)
            or response_format.get("type") not in _JSON_FORMATS
        ):
            return False
        return image_parts_inline(params.get("messages"))

    def _prepare(
        self,
        deployment: Deployment,
        key: str,
        params: Mapping[str, Any],
        extra_headers: Mapping[str, str] | None,
    ) -> tuple[_Provider, Prepared, str]:
        provider = self._providers[deployment.provider]
        config = deployment.params
        # Config-level params are defaults the client's own override.
        merged = {
            **{k: v for k, v in config.items() if k not in _DEPLOYMENT_PARAMS},
            **params,
        }
        base = str(config.get("api_base") or provider.default_base)
        model = deployment.model.split("/", 1)[1]
        prepared = provider.transform.prepare(model, base, key, merged)
        # The one place outgoing headers are assembled: the provider's own, the deployment's
        # configured extras, then the caller's (trace context).
        configured = config.get("extra_headers")
        if isinstance(configured, Mapping):
            prepared.headers.update({str(k): str(v) for k, v in configured.items()})
        if extra_headers:
            prepared.headers.update(extra_headers)
        return provider, prepared, base

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        found = self._timeouts.get(seconds)
        if found is None:
            # Per connect and per read, as LiteLLM's httpx timeouts are: a stream may run
            # longer than `seconds` while its chunks keep coming (the caller's deadline bounds
            # the whole answer).
            found = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
            self._timeouts[seconds] = found
        return found

    def _failure(
        self, status: int, headers: Mapping[str, str] | None, body: bytes, provider: str
    ) -> ExternalServiceError:
        return translate_http(status, headers, body, provider, self._redactor)

    async def complete(
        self,
        deployment: Deployment,
        key: str,
        params: Mapping[str, Any],
        *,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One chat completion as an OpenAI `chat.completion` dict."""
        provider, prepared, base = self._prepare(deployment, key, params, extra_headers)
        session = self._pool.session(base)
        with upstream_errors(deployment.provider, self._redactor):
            async with session.post(
                prepared.url,
                data=prepared.body,
                headers=prepared.headers,
                timeout=self._timeout(timeout_s),
            ) as response:
                status, headers, body = response.status, response.headers, await response.read()
        if status >= 400:
            raise self._failure(status, headers, body, deployment.provider)
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            # An answer that is not a JSON object is the provider's failure, not the client's.
            raise self._failure(502, headers, body, deployment.provider)
        return provider.transform.response(data, prepared)

    async def stream(
        self,
        deployment: Deployment,
        key: str,
        params: Mapping[str, Any],
        *,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """A streamed chat completion as OpenAI `chat.completion.chunk` dicts. The request is
        sent on the first `__anext__`, so a failing provider fails there, before any chunk."""
        provider, prepared, base = self._prepare(deployment, key, params, extra_headers)
        session = self._pool.session(base)
        with upstream_errors(deployment.provider, self._redactor):
            # Released on every exit; a stream left unread closes its connection, never
            # returning a half-read one to the pool.
            async with session.post(
                prepared.url,
                data=prepared.body,
                headers=prepared.headers,
                timeout=self._timeout(timeout_s),
            ) as response:
                if response.status >= 400:
                    body = await response.read()
                    raise self._failure(
                        response.status, response.headers, body, deployment.provider
                    )
                state = provider.stream(prepared)
                try:
                    async for event in sse_data(response.content.iter_any()):
                        for item in state.feed(event):
                            yield item
                except StreamError as error:
                    raise self._failure(
                        error.status, None, error.body, deployment.provider
                    ) from None
                for item in state.close():
                    yield item
