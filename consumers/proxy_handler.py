"""A handler that asks the gateway's OpenAI-compatible proxy for a chat completion.

Why HTTP and not the proxy's code: the consumers scale and deploy separately from the proxy;
the task name is the proxy's model name. Every HTTP outcome is translated into the consumers'
error tree in ONE function (`error_for_response` / `_transport_errors`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

from consumers.errors import (
    HandlerError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from consumers.handlers import Completion, HandlerContext
from consumers.settings import ProxySettings
from schemas import RequestEvent, ToolCall, Usage, child_traceparent

__all__ = ["ProxyCompletionHandler", "error_for_response", "parse_retry_after"]


class _Choice(msgspec.Struct):
    message: dict[str, Any]


class _ChatResponse(msgspec.Struct):
    model: str = ""
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: Usage | None = None


_RESPONSE = msgspec.json.Decoder(_ChatResponse)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body["error"]["message"]
        return str(message)[:500]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "error"


def error_for_response(response: httpx.Response) -> HandlerError:
    """Translate a non-2xx proxy answer into the consumers' error tree."""
    status = response.status_code
    message = f"proxy answered {status}: {_error_message(response)}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return ProviderRateLimited(message, retry_after_s=retry_after)
    if status in (401, 403):
        return ProviderAuthError(message)
    if status == 404:
        return ProviderNotFound(message)
    if status in (408, 504):
        return ProviderTimeout(message)
    if status >= 500 or status == 409:
        return ProviderUnavailable(message)
    return ProviderBadRequest(message)


@contextmanager
def _transport_errors() -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(f"proxy timed out: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"proxy unreachable: {type(exc).__name__}") from exc


class ProxyCompletionHandler:
    """Sends the event's messages to `{base_url}/v1/chat/completions` with the task as model."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout_s: float = 120.0,
        provider: str = "proxy",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._provider = provider
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._encoder = msgspec.json.Encoder()

    @classmethod
    def from_settings(cls, proxy: ProxySettings, *, api_key: str | None) -> ProxyCompletionHandler:
        """The handler `gateway_settings.kafka.proxy` describes; the key comes from the caller."""
        return cls(proxy.url, api_key=api_key, timeout_s=proxy.timeout_s, provider=proxy.provider)

    @property
    def provider(self) -> str:
        return self._provider

    async def start(self) -> None:
        if self._client is None:
            headers = {"content-type": "application/json"}
            if self._api_key:
                headers["authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                headers=headers,
                timeout=self._timeout_s,
                transport=self._transport,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _body(self, event: RequestEvent) -> bytes:
        body: dict[str, Any] = {
            "model": event.task,
            "messages": msgspec.to_builtins(event.messages),
        }
        if event.response_format is not None:
            body["response_format"] = event.response_format
        if event.temperature is not None:
            body["temperature"] = event.temperature
        if event.max_tokens is not None:
            body["max_tokens"] = event.max_tokens
        if event.tools is not None:
            body["tools"] = event.tools
        return self._encoder.encode(body)

    async def handle(self, event: RequestEvent, ctx: HandlerContext) -> Completion:
        if self._client is None:
            raise ProviderUnavailable("ProxyCompletionHandler used before start()")
        headers = {"x-request-id": event.event_id}
        if ctx.traceparent is not None:
            headers["traceparent"] = child_traceparent(ctx.traceparent)
        with _transport_errors():
            response = await self._client.post(
                "/v1/chat/completions", content=self._body(event), headers=headers
            )
        if response.status_code >= 300:
            raise error_for_response(response)
        try:
            parsed = _RESPONSE.decode(response.content)
            message = parsed.choices[0].message
        except (msgspec.DecodeError, IndexError) as exc:
            raise ProviderUnavailable("proxy returned an unreadable completion") from exc
        raw_calls = message.get("tool_calls")
        tool_calls = msgspec.convert(raw_calls, list[ToolCall]) if raw_calls else None
        content = message.get("content")
        return Completion(
            # The gateway says which provider actually served (after any fallback); a plain
            # OpenAI-compatible server does not, and then the configured name stands.
            provider=response.headers.get("x-gateway-provider", self._provider),
            model=parsed.model or event.task,
            content=content if isinstance(content, str) else None,
            tool_calls=tool_calls,
            usage=parsed.usage,
        )
