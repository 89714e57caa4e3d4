"""The pipelines' HTTP client of the gateway proxy, for every route a media task uses.

Why one client: image generation, edits, videos, fine-tuning and chat all need the same
request headers (the event's id, its deadline as `x-gateway-timeout-ms`, its priority and
trace context), the same translation of failures into the consumers' error tree
(`consumers.proxy_handler.error_for_response`, which scrubs secrets), and the same reading of
the proxy's accounting headers into a `Served` record. The proxy owns retries and fallbacks;
this client makes one call per method call.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from consumers.errors import DeadlineExceeded, ProviderUnavailable
from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.proxy_client import ANSWER_GRACE_S, Files, ProxyClient, ProxyResponse
from consumers.proxy_handler import accounting_of, error_for_response, transport_errors
from core.http import PRIORITY_HEADER, TIMEOUT_HEADER, format_timeout, seconds_until
from core.redact import Redactor
from schemas import GatewayLatency, Request, Usage, child_traceparent

__all__ = ["ProxyHttp", "Served", "served_from"]


class Served(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who served a request and what it cost: the accounting every pipeline result carries."""

    provider: str
    model: str
    # A fallback deployment answered (the primary failed or could not take the request).
    fallback: bool = False
    # Provider calls the proxy made for this answer, retries and fallbacks included.
    provider_attempts: Annotated[int, msgspec.Meta(ge=1)] = 1
    usage: Usage | None = None
    # Images the provider produced (or was billed for), 0 for text answers.
    images: Annotated[int, msgspec.Meta(ge=0)] = 0
    cost_usd: Annotated[float, msgspec.Meta(ge=0)] | None = None
    proxy_latency_ms: GatewayLatency | None = None


def served_from(
    response: ProxyResponse,
    *,
    provider: str,
    model: str,
    usage: Usage | None = None,
    images: int = 0,
) -> Served:
    """The accounting of one proxy answer; `provider` and `model` stand where the server does
    not say (a plain OpenAI-compatible server sets none of the gateway's headers)."""
    headers = response.headers
    cost, latency = accounting_of(headers)
    try:
        attempts = max(1, int(headers.get("x-gateway-attempts", "1")))
    except ValueError:
        attempts = 1
    return Served(
        provider=headers.get("x-gateway-provider", provider),
        model=headers.get("x-gateway-model", model),
        fallback=headers.get("x-gateway-fallback") == "true",
        provider_attempts=attempts,
        usage=usage,
        images=images,
        cost_usd=cost,
        proxy_latency_ms=latency,
    )


class ProxyHttp:
    """One pooled HTTP client of the proxy, its key and the process's redactor."""

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
        self._timeout_s = timeout_s
        self.provider = provider
        self.max_deliveries = max_deliveries
        self._redactor = redactor if redactor is not None else Redactor()
        self._redactor.add(api_key)
        self._client = ProxyClient(base_url, api_key=api_key, timeout_s=timeout_s)

    @classmethod
    def from_resources(
        cls,
        resources: HandlerResources,
        *,
        url: str | None = None,
        timeout_s: float | None = None,
        provider: str | None = None,
    ) -> ProxyHttp:
        """The client `gateway_settings.kafka.proxy` describes, with a handler's overrides."""
        proxy = resources.settings.proxy
        return cls(
            url or proxy.url,
            api_key=resources.proxy_api_key,
            timeout_s=timeout_s or proxy.timeout_s,
            provider=provider or proxy.provider,
            max_deliveries=proxy.max_deliveries,
            redactor=resources.redactor,
        )

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
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: Files | None = None,
        timeout_s: float | None = None,
    ) -> ProxyResponse:
        """One request to the proxy on behalf of `event`; a non-2xx answer or a transport
        failure raises the consumers' error for it (its message scrubbed)."""
        if not self._client.started:
            raise ProviderUnavailable("ProxyHttp used before start()")
        budget = min(self.budget_s(event), timeout_s) if timeout_s else self.budget_s(event)
        if budget <= 0:
            raise DeadlineExceeded("the event's deadline passed before the proxy was asked")
        headers = {"x-request-id": event.event_id, TIMEOUT_HEADER: format_timeout(budget)}
        if event.priority != "normal":
            headers[PRIORITY_HEADER] = event.priority
        if ctx.traceparent is not None:
            headers["traceparent"] = child_traceparent(ctx.traceparent)
        with transport_errors():
            response = await self._client.request(
                method,
                path,
                json=json,
                data=data,
                files=files,
                headers=headers,
                timeout_s=budget + ANSWER_GRACE_S,
            )
        if response.status >= 300:
            raise error_for_response(response, self._redactor)
        return response
