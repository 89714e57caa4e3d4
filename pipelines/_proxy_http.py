"""The pipelines' HTTP client of the gateway proxy, for every route a media task uses.

Why one client: image generation, edits, videos, fine-tuning and chat all need the same
request headers (the event's id, its deadline as `x-gateway-timeout-ms`, its priority and
trace context) and the same translation of failures into the consumers' error tree, which
scrubs secrets: both are `consumers.proxy_handler.ProxyCaller`'s, the chat handler's own. This
module adds the reading of the proxy's accounting headers into a `Served` record. The proxy
owns retries and fallbacks; this client makes one call per method call.
"""

from __future__ import annotations

from typing import Annotated, Self

import msgspec

from consumers.handler_config import HandlerResources
from consumers.proxy_client import ProxyResponse
from consumers.proxy_handler import ProxyCaller, accounting_of, attempts_of
from schemas import GatewayLatency, Usage

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
    return Served(
        provider=headers.get("x-gateway-provider", provider),
        model=headers.get("x-gateway-model", model),
        fallback=headers.get("x-gateway-fallback") == "true",
        provider_attempts=attempts_of(headers),
        usage=usage,
        images=images,
        cost_usd=cost,
        proxy_latency_ms=latency,
    )


class ProxyHttp(ProxyCaller):
    """One pooled HTTP client of the proxy, its key and the process's redactor, for any route."""

    @classmethod
    def from_resources(
        cls,
        resources: HandlerResources,
        *,
        url: str | None = None,
        timeout_s: float | None = None,
        provider: str | None = None,
    ) -> Self:
        """The client `gateway_settings.kafka.proxy` describes, with a handler's overrides."""
        return cls.from_settings(
            resources.settings.proxy,
            api_key=resources.proxy_api_key,
            redactor=resources.redactor,
            url=url,
            timeout_s=timeout_s,
            provider=provider,
        )
