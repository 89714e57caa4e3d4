"""A handler that asks the gateway's OpenAI-compatible proxy for a chat completion.

Why HTTP and not the proxy's code: the consumers scale and deploy separately from the proxy;
the task name is the proxy's model name. Every HTTP outcome is translated into the consumers'
error tree in ONE function (`error_for_response` / `transport_errors`).

The proxy owns retries and fallbacks (`proxy.resilience`). This handler tells it how long the
answer may take (`x-gateway-timeout-ms`: the event's deadline, else `timeout_s`), waits a little
longer than that for its answer, so it never starts a second chain while the first one runs,
passes the event's priority for the proxy's budget queue (`x-gateway-priority`), and
raises a retriable error only when the proxy marks the failure retriable (`x-gateway-retriable`,
or a 429 with Retry-After): the invoker then sends it again at most `max_deliveries` times in
all. Error messages are scrubbed by the redactor, which knows this handler's key: a proxy or
provider echoing it never puts it into an exception, a result or a dead letter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

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
from consumers.proxy_client import ANSWER_GRACE_S, ProxyClient, ProxyResponse
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
from schemas import CompletionRequested, GatewayLatency, ToolCall, Usage, child_traceparent

__all__ = [
    "ANSWER_GRACE_S",
    "ProxyCompletionHandler",
    "accounting_of",
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


def _attempts_of(headers: Mapping[str, str]) -> int:
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


class ProxyCompletionHandler:
    """Sends the event's messages to `{base_url}/v1/chat/completions` with the task as model."""

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
        self._encoder = msgspec.json.Encoder()

    @classmethod
    def from_settings(
        cls, proxy: ProxyClientSettings, *, api_key: str | None, redactor: Redactor | None = None
    ) -> ProxyCompletionHandler:
        """The handler `gateway_settings.kafka.proxy` describes; the key comes from the caller."""
        return cls(
            proxy.url,
            api_key=api_key,
            timeout_s=proxy.timeout_s,
            provider=proxy.provider,
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

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        await self._client.stop()

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
        return self._encoder.encode(body)

    def budget_s(self, event: CompletionRequested) -> float:
        """Seconds this delivery may take: until the event's deadline, at most `timeout_s`."""
        if event.deadline is None:
            return self._timeout_s
        return min(self._timeout_s, seconds_until(event.deadline))

    async def handle(self, event: CompletionRequested, ctx: HandlerContext) -> Completion:
        if not self._client.started:
            raise ProviderUnavailable("ProxyCompletionHandler used before start()")
        budget = self.budget_s(event)
        if budget <= 0:
            raise DeadlineExceeded("the event's deadline passed before the proxy was asked")
        headers = {"x-request-id": event.event_id, TIMEOUT_HEADER: format_timeout(budget)}
        # Sent only when not normal: normal is the proxy's default, and other OpenAI-compatible
        # servers this handler may face then see exactly the request they saw before.
        if event.priority != "normal":
            headers[PRIORITY_HEADER] = event.priority
        if ctx.traceparent is not None:
            headers["traceparent"] = child_traceparent(ctx.traceparent)
        with transport_errors():
            response = await self._client.request(
                "POST",
                "/v1/chat/completions",
                content=self._body(event),
                headers=headers,
                timeout_s=budget + ANSWER_GRACE_S,
            )
        if response.status >= 300:
            raise error_for_response(response, self._redactor)
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
            provider_attempts=_attempts_of(response.headers),
        )
