"""Cost and latency on every answer of the gateway's routes: chat (plain and streamed, with the
official SDK), embeddings and image generation, priced from LiteLLM's cost map or the config."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import litellm
import openai
import pytest
from observed_proxy import ObservedProxy
from proxy_support import MASTER_KEY

from emulators.testing import FalHandle
from proxy.accounting import SEED_PRICES, PriceBook, TokenPrice

LATENCY_HEADERS = (
    "x-gateway-latency-ms",
    "x-gateway-upstream-ms",
    "x-gateway-queue-ms",
    "x-gateway-overhead-ms",
)


@pytest.fixture
def sdk(observed: ObservedProxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{observed.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as client:
        yield client


def _prompt(text: str) -> list[Any]:
    return [{"role": "user", "content": f"{text} {uuid.uuid4().hex[:8]}"}]


def _latency(headers: Any) -> dict[str, float]:
    return {name: float(headers[name]) for name in LATENCY_HEADERS}


def _litellm_cost(model: str, prompt: int, completion: int) -> float:
    cost_in, cost_out = litellm.cost_per_token(
        model=model, prompt_tokens=prompt, completion_tokens=completion
    )
    return float(cost_in + cost_out)


def test_a_completion_of_a_mapped_model_costs_what_litellms_map_says(sdk: openai.OpenAI) -> None:
    """video-summarization's claude-sonnet-4-5 is in LiteLLM's map: the cost header is
    litellm.cost_per_token of the answer's usage."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="video-summarization", messages=_prompt("summarise the runway video")
    )
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens > 0
    expected = _litellm_cost(
        "anthropic/claude-sonnet-4-5", usage.prompt_tokens, usage.completion_tokens
    )
    assert expected > 0
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx(expected, abs=1e-6)


def test_a_completion_of_an_unmapped_model_is_priced_from_the_config(sdk: openai.OpenAI) -> None:
    """captioning's claude-sonnet-4-20250514 is missing from LiteLLM's map: the config's
    per-1K prices apply ($0.003 in, $0.015 out)."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="captioning", messages=_prompt("caption this handbag")
    )
    usage = raw.parse().usage
    assert usage is not None
    expected = usage.prompt_tokens * 0.003 / 1000 + usage.completion_tokens * 0.015 / 1000
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx(expected, abs=1e-6)


def test_latency_headers_split_the_total(sdk: openai.OpenAI) -> None:
    """Total, upstream, queue and overhead come back; overhead is total minus the rest."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="styling", messages=_prompt("style a linen shirt")
    )
    ms = _latency(raw.headers)
    assert ms["x-gateway-upstream-ms"] > 0
    assert ms["x-gateway-latency-ms"] >= ms["x-gateway-upstream-ms"]
    rest = ms["x-gateway-latency-ms"] - ms["x-gateway-upstream-ms"] - ms["x-gateway-queue-ms"]
    assert ms["x-gateway-overhead-ms"] == pytest.approx(rest, abs=0.2)


def test_a_streamed_answer_ends_with_the_gateways_accounting(sdk: openai.OpenAI) -> None:
    """The last chunk carries x_gateway (cost and latency split); no usage reaches a client
    that did not ask for it, although the gateway asked the provider for it."""
    chunks = list(
        sdk.chat.completions.create(
            model="video-summarization", messages=_prompt("describe the coat"), stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = (chunks[-1].model_extra or {})["x_gateway"]
    assert text.startswith("[anthropic-emulator")
    assert final["cost_usd"] > 0
    assert set(final["latency_ms"]) == {"total", "upstream", "queue", "overhead"}
    assert final["latency_ms"]["total"] >= final["latency_ms"]["upstream"] > 0
    assert all(chunk.usage is None for chunk in chunks)


def test_a_client_asking_for_stream_usage_gets_it_with_the_accounting(sdk: openai.OpenAI) -> None:
    """stream_options.include_usage: the final chunk holds the usage and the cost it implies."""
    chunks = list(
        sdk.chat.completions.create(
            model="video-summarization",
            messages=_prompt("describe the boots"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    expected = _litellm_cost(
        "anthropic/claude-sonnet-4-5", usage.prompt_tokens, usage.completion_tokens
    )
    final = (chunks[-1].model_extra or {})["x_gateway"]
    assert final["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert [c.usage is not None for c in chunks].count(True) == 1


def test_embeddings_report_latency_and_a_zero_cost(sdk: openai.OpenAI) -> None:
    """An in-process model costs nothing per request; its time inside the model is upstream."""
    raw = sdk.embeddings.with_raw_response.create(model="embeddings", input=["a red dress"])
    ms = _latency(raw.headers)
    assert raw.headers["x-gateway-cost-usd"] == "0.000000"
    assert ms["x-gateway-latency-ms"] >= ms["x-gateway-upstream-ms"] > 0


def test_an_image_generation_reports_its_cost_once_and_its_latency(
    sdk: openai.OpenAI, fal_emulator: FalHandle
) -> None:
    """The Fal image route keeps its per-megapixel price (512x512: one billed megapixel at
    $0.035) and gains the latency headers."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.02, run_s=0.05)
    raw = sdk.images.with_raw_response.generate(
        model="image-generation", prompt="a denim jacket", size="512x512"
    )
    assert raw.headers.get_list("x-gateway-cost-usd") == ["0.035000"]
    ms = _latency(raw.headers)
    assert ms["x-gateway-latency-ms"] >= ms["x-gateway-upstream-ms"] > 0


def test_the_price_book_prefers_litellms_map_then_the_config() -> None:
    """A model in LiteLLM's map keeps the map's rates over a config entry; one missing from
    it takes the config's; one in neither is unpriced."""
    configured = {
        "openai/gpt-4o": TokenPrice(input_per_1k=1.0, output_per_1k=1.0),
        "anthropic/claude-3-5-sonnet-20241022": TokenPrice(input_per_1k=0.003, output_per_1k=0.015),
    }
    book = PriceBook.build(
        ["openai/gpt-4o", "anthropic/claude-3-5-sonnet-20241022", "acme/unknown-1"], configured
    )
    assert book.chat_cost("openai/gpt-4o", 1000, 100) == pytest.approx(
        _litellm_cost("openai/gpt-4o", 1000, 100)
    )
    assert book.chat_cost("anthropic/claude-3-5-sonnet-20241022", 1000, 1000) == pytest.approx(
        0.018
    )
    assert book.chat_cost("acme/unknown-1", 1000, 1000) is None


def test_the_seed_table_prices_images_of_config_priced_models() -> None:
    """A config-priced model with a per-image price bills each image part of the request."""
    seed = SEED_PRICES["gemini/gemini-2.5-flash"]
    book = PriceBook.build(["acme/vision-1"], {"acme/vision-1": seed})
    assert book.chat_cost("acme/vision-1", 1000, 1000, images=2) == pytest.approx(
        0.0001 + 0.0004 + 2 * 0.00004
    )
