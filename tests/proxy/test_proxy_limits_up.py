"""Provider limits through `gateway up` (emulated providers) with the official openai SDK: a
request the primary cannot take goes to the fallback that can, saying why; one no deployment
can take, or one wrong for all, is a 400 naming the parameter before any provider call; `n` on
Anthropic is answered with n choices."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from gateway_process import gateway_up
from PIL import Image
from provider_setup import write_config

MASTER_KEY = "sk-gw-limits-up-test-key"
PROVIDERS = ("anthropic", "openai", "gemini")


@dataclass(frozen=True)
class Gateway:
    url: str
    emulators: dict[str, str]

    def requests(self) -> dict[str, int]:
        """Requests each chat provider's emulator has received so far."""
        return {
            name: int(httpx.get(f"{url}/_emulator/stats").json()["requests"])
            for name, url in self.emulators.items()
        }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`gateway up --no-kafka` without provider keys, and its emulators' URLs."""
    config = write_config(tmp_path_factory.mktemp("limits-up") / "litellm_config.yaml")
    with gateway_up(config, master_key=MASTER_KEY) as running:
        yield Gateway(running.url, running.emulator_bases(PROVIDERS))


@pytest.fixture
def sdk(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=60
    ) as client:
        yield client


def _png_url(colour: tuple[int, int, int] = (30, 60, 120)) -> str:
    out = io.BytesIO()
    Image.new("RGB", (24, 24), colour).save(out, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(out.getvalue()).decode()}"


def _images(count: int, text: str) -> list[Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": _png_url()}}] * count
    return [{"role": "user", "content": parts}]


def test_too_many_images_for_anthropic_are_served_by_the_gemini_fallback(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """21 images on captioning skip Claude (20) without calling it; Gemini answers, saying why."""
    before = gateway.requests()
    raw = sdk.chat.completions.with_raw_response.create(
        model="captioning", messages=_images(21, "Caption these 21 looks (limits-up fallback).")
    )
    completion = raw.parse()
    after = gateway.requests()
    assert completion.choices[0].message.content
    assert raw.headers["x-gateway-provider"] == "gemini"
    assert raw.headers["x-gateway-fallback"] == "true"
    assert raw.headers["x-gateway-fallback-reason"] == (
        "messages: 21 images exceed anthropic's 20 per request"
    )
    assert after["anthropic"] == before["anthropic"]
    assert after["gemini"] == before["gemini"] + 1


def test_a_request_no_deployment_can_take_is_a_400_with_no_provider_call(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """21 frames exceed every video-summarization provider: 400 naming messages, no attempt."""
    before = gateway.requests()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="video-summarization", messages=_images(21, "Summarise these frames.")
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "messages"
    assert error["type"] == "invalid_request_error"
    assert "anthropic's 20 per request" in error["message"]
    assert gateway.requests() == before


def test_n_on_an_anthropic_task_answers_n_choices(gateway: Gateway, sdk: openai.OpenAI) -> None:
    """n=2 on captioning is served by Claude with two separate calls, merged into two choices."""
    before = gateway.requests()
    raw = sdk.chat.completions.with_raw_response.create(
        model="captioning",
        n=2,
        messages=[{"role": "user", "content": "Caption a linen shirt (limits-up n=2)."}],
    )
    completion = raw.parse()
    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content for c in completion.choices)
    assert gateway.requests()["anthropic"] == before["anthropic"] + 2


def test_an_undecodable_data_url_image_is_a_400_naming_its_part(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """A data URL whose bytes are no image is refused before any provider call, by its place."""
    before = gateway.requests()
    broken = f"data:image/png;base64,{base64.b64encode(b'not an image at all').decode()}"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="captioning",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Caption this."},
                        {"type": "image_url", "image_url": {"url": broken}},
                    ],
                }
            ],
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "messages[0].content[1].image_url"
    assert gateway.requests() == before


def test_max_tokens_over_the_output_cap_is_a_400_naming_max_tokens(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """max_tokens above Gemini flash's 65536 output tokens on visibility names max_tokens."""
    before = gateway.requests()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="visibility",
            max_tokens=70000,
            messages=[{"role": "user", "content": "Is this product visible?"}],
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "max_tokens"
    assert "65536" in error["message"]
    assert gateway.requests() == before
