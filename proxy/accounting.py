"""What one request cost and how long it took: the per-request ledger and the price book.

Why it exists: every answer of the gateway's own routes reports its cost in USD and its latency
split into upstream time, queue wait and gateway overhead, and the metrics, the traces and the
Kafka results read the same numbers. So one `RequestLedger` is opened per request by the
outermost ASGI layer (`proxy.observe`) and filled by whoever learns something: the attempt
observer (upstream time, attempts, retries, fallbacks, who served), the routes (tokens, cost),
the budget queue (`record_queue_wait`). It travels in a context variable rather than through
every signature, since the provider calls run in tasks created below the route (which copy the
context, and so share the one ledger object).

Prices: LiteLLM's cost map where it has the model (read once at start-up: its `cost_per_token`
costs ~150 us a call, far more than the rest of the accounting), else
`gateway_settings.prices` (USD per 1K tokens and per input image), whose default is the seed's
table. Media routes price per image, megapixel, training step or second with `priced`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = [
    "COST_HEADER",
    "SEED_PRICES",
    "PriceBook",
    "RequestLedger",
    "TokenPrice",
    "TokenRates",
    "count_images",
    "current_ledger",
    "litellm_image_price",
    "litellm_token_rates",
    "open_ledger",
    "priced",
    "record_cost",
    "record_queue_wait",
    "record_tokens",
    "served_models",
]

COST_HEADER = "x-gateway-cost-usd"
# LiteLLM's cost map prices some models higher above this many prompt tokens.
_TIER_TOKENS = 200_000
# The gateway's provider names -> LiteLLM's, as its cost map keys them.
_LITELLM_PROVIDER = {"vertex": "vertex_ai", "fal": "fal_ai"}


@dataclass(slots=True)
class RequestLedger:
    """One request's accounting. Times are seconds on `time.perf_counter`'s clock.

    Filled by: the attempt observer (`attempts`, `retries`, `fallbacks`, `upstream_s`,
    `provider`, `model`), the route (`task`, tokens, `cost_usd`, `error_type`), the budget
    queue (`queue_s`, through `record_queue_wait`). Read by the ASGI layer for the response
    headers and the metrics, and by the streaming path for the final chunk.
    """

    arrived: float = field(default_factory=time.perf_counter)
    # Set by a gateway route as soon as it knows the task: only such requests are accounted.
    task: str | None = None
    provider: str | None = None
    model: str | None = None
    upstream_s: float = 0.0
    queue_s: float = 0.0
    attempts: int = 0
    retries: int = 0
    fallbacks: int = 0
    cost_usd: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # The class name of the error the request was answered with, if any.
    error_type: str | None = None

    def total_s(self, now: float | None = None) -> float:
        return (time.perf_counter() if now is None else now) - self.arrived

    def latency_ms(self, now: float | None = None) -> dict[str, float]:
        """total, upstream, queue and overhead (total minus upstream minus queue), in ms."""
        total = self.total_s(now)
        overhead = max(0.0, total - self.upstream_s - self.queue_s)
        return {
            "total": round(total * 1000, 3),
            "upstream": round(self.upstream_s * 1000, 3),
            "queue": round(self.queue_s * 1000, 3),
            "overhead": round(overhead * 1000, 3),
        }

    def headers(self, now: float | None = None) -> list[tuple[bytes, bytes]]:
        """The latency headers (and the cost, when known) of an answer sent now."""
        ms = self.latency_ms(now)
        headers = [
            (b"x-gateway-latency-ms", _fmt(ms["total"])),
            (b"x-gateway-upstream-ms", _fmt(ms["upstream"])),
            (b"x-gateway-queue-ms", _fmt(ms["queue"])),
            (b"x-gateway-overhead-ms", _fmt(ms["overhead"])),
        ]
        if self.cost_usd is not None:
            headers.append((COST_HEADER.encode(), f"{self.cost_usd:.6f}".encode()))
        return headers


def _fmt(ms: float) -> bytes:
    return f"{ms:.1f}".encode()


_LEDGER: ContextVar[RequestLedger | None] = ContextVar("gateway_request_ledger", default=None)


def current_ledger() -> RequestLedger | None:
    """The ledger of the request being served, or None outside an accounted request."""
    return _LEDGER.get()


@contextmanager
def open_ledger(ledger: RequestLedger) -> Iterator[RequestLedger]:
    """Make `ledger` the current one for the block (and the tasks it creates)."""
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        _LEDGER.reset(token)


def record_queue_wait(seconds: float) -> None:
    """Add time spent waiting in a budget queue to the current request's ledger."""
    ledger = _LEDGER.get()
    if ledger is not None:
        ledger.queue_s += seconds


def record_tokens(prompt: int, completion: int) -> None:
    ledger = _LEDGER.get()
    if ledger is not None:
        ledger.prompt_tokens += prompt
        ledger.completion_tokens += completion


def record_cost(cost_usd: float | None) -> None:
    ledger = _LEDGER.get()
    if ledger is not None and cost_usd is not None:
        ledger.cost_usd = cost_usd


# ---------------------------------------------------------------- prices


class TokenPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.prices.<model>`: USD per 1K prompt / completion tokens, per image."""

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0
    # Each image part of a chat request, on top of its tokens (the seed's table prices them).
    per_image: float | None = None

    def __post_init__(self) -> None:
        if min(self.input_per_1k, self.output_per_1k, self.per_image or 0.0) < 0:
            raise ValueError("prices must not be negative")


# The seed's table (USD per 1K tokens, per image): the prices when the config names none.
SEED_PRICES: Mapping[str, TokenPrice] = {
    "anthropic/claude-sonnet-4-5": TokenPrice(
        input_per_1k=0.003, output_per_1k=0.015, per_image=0.0012
    ),
    "openai/gpt-4o": TokenPrice(input_per_1k=0.0025, output_per_1k=0.01, per_image=0.002),
    "gemini/gemini-2.5-flash": TokenPrice(
        input_per_1k=0.0001, output_per_1k=0.0004, per_image=0.00004
    ),
}


@dataclass(frozen=True, slots=True)
class TokenRates:
    """USD per token, as the book applies them; `source` is "litellm" or "config"."""

    input: float
    output: float
    source: str
    per_image: float = 0.0
    # LiteLLM's rates for requests above _TIER_TOKENS prompt tokens, where the map has them.
    input_above: float | None = None
    output_above: float | None = None

    def cost(self, prompt: int, completion: int, images: int = 0) -> float:
        tiered = prompt > _TIER_TOKENS and self.input_above is not None
        rate_in = self.input_above if tiered and self.input_above is not None else self.input
        rate_out = self.output_above if tiered and self.output_above is not None else self.output
        return round(prompt * rate_in + completion * rate_out + images * self.per_image, 8)


def _map_entries(model: str) -> Iterator[Mapping[str, Any]]:
    import litellm  # noqa: PLC0415 - the proxy has imported it by now; start-up only

    provider, _, name = model.partition("/")
    for candidate in (model, f"{_LITELLM_PROVIDER.get(provider, provider)}/{name}", name):
        entry = litellm.model_cost.get(candidate)
        if isinstance(entry, Mapping):
            yield entry


def _number(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) else None


def litellm_token_rates(model: str) -> TokenRates | None:
    """Per-token prices in LiteLLM's cost map for a config model name; a zero-priced entry
    counts as unpriced (the map carries placeholders)."""
    for entry in _map_entries(model):
        rate_in = _number(entry, "input_cost_per_token") or 0.0
        rate_out = _number(entry, "output_cost_per_token") or 0.0
        if rate_in > 0 or rate_out > 0:
            return TokenRates(
                input=rate_in,
                output=rate_out,
                source="litellm",
                input_above=_number(
                    entry, f"input_cost_per_token_above_{_TIER_TOKENS // 1000}k_tokens"
                ),
                output_above=_number(
                    entry, f"output_cost_per_token_above_{_TIER_TOKENS // 1000}k_tokens"
                ),
            )
    return None


def litellm_image_price(model: str) -> float | None:
    """USD per output image in LiteLLM's cost map for a config model name, if it has one."""
    for entry in _map_entries(model):
        price = _number(entry, "output_cost_per_image")
        if price is not None and price > 0:
            return price
    return None


def priced(rate: float | None, quantity: float) -> float | None:
    """`rate` x `quantity` in USD (6 decimals), None when the rate is unknown."""
    return None if rate is None else round(rate * quantity, 6)


class PriceBook:
    """Token prices of the models a gateway serves, resolved once at start-up."""

    def __init__(self, rates: Mapping[str, TokenRates]) -> None:
        self._rates = dict(rates)

    @classmethod
    def build(cls, models: Iterable[str], configured: Mapping[str, TokenPrice]) -> PriceBook:
        """LiteLLM's map where it has the model, else `configured`; models in neither are
        unpriced (their answers carry no cost)."""
        rates: dict[str, TokenRates] = {}
        for model in models:
            found = litellm_token_rates(model)
            price = configured.get(model)
            if found is None and price is not None:
                found = TokenRates(
                    input=price.input_per_1k / 1000,
                    output=price.output_per_1k / 1000,
                    source="config",
                )
            if found is not None:
                # An image price comes from the config either way: the map folds images into
                # prompt tokens, the seed's table lists them apart.
                per_image = (
                    price.per_image if price is not None and found.source == "config" else None
                )
                rates[model] = TokenRates(
                    input=found.input,
                    output=found.output,
                    source=found.source,
                    per_image=per_image or 0.0,
                    input_above=found.input_above,
                    output_above=found.output_above,
                )
        return cls(rates)

    def rates(self, model: str) -> TokenRates | None:
        return self._rates.get(model)

    def chat_cost(self, model: str, prompt: int, completion: int, images: int = 0) -> float | None:
        """USD for one answer of `model`, None when the model is unpriced."""
        rates = self._rates.get(model)
        return None if rates is None else rates.cost(prompt, completion, images)

    def wants_images(self, model: str) -> bool:
        rates = self._rates.get(model)
        return rates is not None and rates.per_image > 0


def count_images(messages: Any) -> int:
    """Image parts in an OpenAI `messages` list (for models priced per input image)."""
    count = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(
                1 for part in content if isinstance(part, dict) and part.get("type") == "image_url"
            )
    return count


def served_models(routing: Any) -> list[str]:
    """Every model a `proxy.routing.RoutingTable` may call, in config order, once each."""
    models: dict[str, None] = {}
    for task in routing.tasks():
        route = routing.get(task)
        if route is None:
            continue
        for deployment in (*route.deployments, *route.content_policy_deployments):
            models.setdefault(deployment.model, None)
    return list(models)
