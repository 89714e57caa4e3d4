"""A handler that asks the gateway's OpenAI-compatible proxy for a chat completion.

Why HTTP and not the proxy's code: the consumers scale and deploy separately from the proxy;
the task name is the proxy's model name. Every HTTP outcome is translated into the consumers'
error tree in ONE function (`error_for_response` / `transport_errors`).

The proxy owns retries and fallbacks (`proxy.resilience`). Every call on behalf of an event
goes through `ProxyCaller` (this handler's base, and the pipelines' `ProxyHttp`): it tells the
proxy how long the answer may take (`x-gateway-timeout-ms`: the event's deadline, else
`timeout_s`), waits a little longer than that for its answer, so it never starts a second chain
while the first one runs, passes the event's priority for the proxy's budget queue
(`x-gateway-priority`), and raises a retriable error only when the proxy marks the failure
retriable (`x-gateway-retriable`, or a 429 with Retry-After): the invoker then sends it again
at most `max_deliveries` times in all. Error messages are scrubbed by the redactor, which knows
the caller's key: a proxy or provider echoing it never puts it into an exception, a result or a
dead letter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self

import aiohttp
import msgspec

from consumers.errors import (
    AllProvidersRateLimited,
    DeadlineExceeded,
    HandlerError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderFailed,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from consumers.handlers import Completion, HandlerContext
from consumers.proxy_client import ANSWER_GRACE_S, Files, ProxyClient, ProxyResponse
from consumers.settings import ProxyClientSettings
from core.http import (
    PRIORITY_HEADER,
    RETRIABLE_HEADER,
    TIMEOUT_HEADER,
    format_timeout,
    retry_after_seconds,
    seconds_until,
)
from core.redact import Redactor
from schemas import (
    CompletionRequested,
    GatewayLatency,
    Request,
    ToolCall,
    Usage,
    child_traceparent,
)

__all__ = [
    "ANSWER_GRACE_S",
    "ProxyCaller",
    "ProxyCompletionHandler",
    "accounting_of",
    "attempts_of",
    "error_for_response",
    "transport_errors",
]


class _Choice(msgspec.Struct):
    message: dict[str, Any]


class _ChatResponse(msgspec.Struct):
    model: str = ""
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: Usage | None = None


_RESPONSE = msgspec.json.Decoder(_ChatResponse)
_ENCODER = msgspec.json.Encoder()
# The gateway proxy's accounting headers (`proxy.accounting`): the answer's cost and its time.
_COST_HEADER = "x-gateway-cost-usd"
_LATENCY_HEADERS = {
    "total": "x-gateway-latency-ms",
    "upstream": "x-gateway-upstream-ms",
    "queue": "x-gateway-queue-ms",
    "overhead": "x-gateway-overhead-ms",
}


def _number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(headers[name])
    except (KeyError, ValueError):
        return None
    return value if value >= 0 else None


def accounting_of(headers: Mapping[str, str]) -> tuple[float | None, GatewayLatency | None]:
    """The cost and latency split the gateway's proxy reported (None from other servers)."""
    times = {field: _number(headers, name) for field, name in _LATENCY_HEADERS.items()}
    latency = (
        GatewayLatency(**{field: value or 0.0 for field, value in times.items()})
        if times["total"] is not None
        else None
    )
    return _number(headers, _COST_HEADER), latency


def attempts_of(headers: Mapping[str, str]) -> int:
    """`x-gateway-attempts`, at least 1 (a server that does not report it made one call)."""
    try:
        return max(1, int(headers.get("x-gateway-attempts", "1")))
    except ValueError:
        return 1


def _error_of(response: ProxyResponse) -> tuple[str, str | None]:
    """The error message and code of an OpenAI-format error body (else the reason phrase)."""
    try:
        error = response.json()["error"]
        code = error.get("code")
        return str(error["message"])[:500], code if isinstance(code, str) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.reason or "error", None


def error_for_response(  # noqa: PLR0911 - one return per error class reads best
    response: ProxyResponse, redactor: Redactor
) -> HandlerError:
    """Translate a non-2xx proxy answer into the consumers' error tree, its message scrubbed.

    Retriable only when the proxy says so: `x-gateway-retriable: true` (every provider failed
    in a way that may pass), or a 429 with Retry-After from a server that does not mark its
    answers (it made one call, not a chain); any other 429 or 5xx means the proxy's own
    retries are spent or cannot help, and sending the request again would repeat them.
    """
    status = response.status
    text, code = _error_of(response)
    message = redactor.scrub(f"proxy answered {status}: {text}")
    marker = response.headers.get(RETRIABLE_HEADER)
    marked = marker == "true"
    retry_after = retry_after_seconds(response.headers)
    if code == "deadline_exceeded":
        return DeadlineExceeded(message)
    if status == 429 and marked and code == "rate_limit_exceeded":
        # The proxy's budgets refused before any provider call (every provider of the task
        # saturated): a plain wait, not a spent chain, so it costs no delivery.
        return ProviderRateLimited(message, retry_after_s=retry_after)
    if status == 429 and marked:
        return AllProvidersRateLimited(message, retry_after_s=retry_after)
    if status == 429 and marker is None and retry_after is not None:
        return ProviderRateLimited(message, retry_after_s=retry_after)
    if status in (401, 403):
        return ProviderAuthError(message)
    if status == 404:
        return ProviderNotFound(message)
    if status in (408, 429, 409) or status >= 500:
        if not marked:
            return ProviderFailed(message)
        return ProviderTimeout(message) if status in (408, 504) else ProviderUnavailable(message)
    return ProviderBadRequest(message)


@contextmanager
def transport_errors() -> Iterator[None]:
    try:
        yield
    # Only the exception's type goes into the message: aiohttp's texts can carry the URL.
    except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
        raise ProviderTimeout(f"proxy timed out: {type(exc).__name__}") from exc
    except aiohttp.ClientError as exc:
        raise ProviderUnavailable(f"proxy unreachable: {type(exc).__name__}") from exc


class ProxyCaller:
    """One pooled client of the proxy, its key and the process's redactor: requests on behalf
    of an event, with its headers and deadline, their failures in the consumers' error tree."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout_s: float = 120.0,
        provider: str = "proxy",
        max_deliveries: int = 2,
        redactor: Redactor | None = None,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self._timeout_s = timeout_s
        self._provider = provider
        self._max_deliveries = max_deliveries
        # The process's redactor when one is handed down, so its logs and events mask the key.
        self._redactor = redactor if redactor is not None else Redactor()
        self._redactor.add(api_key)
        self._client = ProxyClient(base_url, api_key=api_key, timeout_s=timeout_s)

    @classmethod
    def from_settings(
        cls,
        proxy: ProxyClientSettings,
        *,
        api_key: str | None,
        redactor: Redactor | None = None,
        url: str | None = None,
        timeout_s: float | None = None,
        provider: str | None = None,
    ) -> Self:
        """The caller `gateway_settings.kafka.proxy` describes, with a handler's overrides;
        the key comes from the caller."""
        return cls(
            url or proxy.url,
            api_key=api_key,
            timeout_s=timeout_s or proxy.timeout_s,
            provider=provider or proxy.provider,
            max_deliveries=proxy.max_deliveries,
            redactor=redactor,
        )

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def max_deliveries(self) -> int:
        """How many times the invoker may send one event here, the first included."""
        return self._max_deliveries

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        await self._client.stop()

    def budget_s(self, event: Request) -> float:
        """Seconds one call for `event` may take: until its deadline, at most `timeout_s`."""
        if event.deadline is None:
            return self._timeout_s
        return min(self._timeout_s, seconds_until(event.deadline))

    async def call(
        self,
        method: str,
        path: str,
        event: Request,
        ctx: HandlerContext,
        *,
        content: bytes | None = None,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: Files | None = None,
        timeout_s: float | None = None,
    ) -> ProxyResponse:
        """One request to the proxy on behalf of `event`, within its budget (at most
        `timeout_s` when given); a non-2xx answer or a transport failure raises the consumers'
        error for it (its message scrubbed)."""
        if not self._client.started:
            raise ProviderUnavailable(f"{type(self).__name__} used before start()")
        budget = min(self.budget_s(event), timeout_s) if timeout_s else self.budget_s(event)
        if budget <= 0:
            raise DeadlineExceeded("the event's deadline passed before the proxy was asked")
        headers = {"x-request-id": event.event_id, TIMEOUT_HEADER: format_timeout(budget)}
        # Sent only when not normal: normal is the proxy's default, and other OpenAI-compatible
        # servers a caller may face then see exactly the request they saw before.
        if event.priority != "normal":
            headers[PRIORITY_HEADER] = event.priority
        if ctx.traceparent is not None:
            headers["traceparent"] = child_traceparent(ctx.traceparent)
        with transport_errors():
            response = await self._client.request(
                method,
                path,
                content=content,
                json=json,
                data=data,
                files=files,
                headers=headers,
                timeout_s=budget + ANSWER_GRACE_S,
            )
        if response.status >= 300:
            raise error_for_response(response, self._redactor)
        return response


class ProxyCompletionHandler(ProxyCaller):
    """Sends the event's messages to `{base_url}/v1/chat/completions` with the task as model."""

    def _body(self, event: CompletionRequested) -> bytes:
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
        return _ENCODER.encode(body)

    async def handle(self, event: CompletionRequested, ctx: HandlerContext) -> Completion:
        response = await self.call(
            "POST", "/v1/chat/completions", event, ctx, content=self._body(event)
        )
        try:
            parsed = _RESPONSE.decode(response.content)
            message = parsed.choices[0].message
        except (msgspec.DecodeError, IndexError) as exc:
            raise ProviderUnavailable("proxy returned an unreadable completion") from exc
        raw_calls = message.get("tool_calls")
        tool_calls = msgspec.convert(raw_calls, list[ToolCall]) if raw_calls else None
        content = message.get("content")
        cost_usd, latency = accounting_of(response.headers)
        return Completion(
            # The gateway says which provider actually served (after any fallback); a plain
            # OpenAI-compatible server does not, and then the configured name stands.
            provider=response.headers.get("x-gateway-provider", self._provider),
            model=parsed.model or event.task,
            content=content if isinstance(content, str) else None,
            tool_calls=tool_calls,
            usage=parsed.usage,
            cost_usd=cost_usd,
            proxy_latency_ms=latency,
            fallback=response.headers.get("x-gateway-fallback") == "true",
            provider_attempts=attempts_of(response.headers),
        )
