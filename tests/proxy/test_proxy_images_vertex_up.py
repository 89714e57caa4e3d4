"""`gateway up` on the embedded default with Vertex AI emulated: a throw-away service account,
generation at several sizes (Fal failing, Vertex serving), try-on on both models, refusals and
the content-policy fallback, and fashion analysis through LiteLLM's vertex_ai provider, all
with the official openai SDK."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_process import gateway_up
from PIL import Image
from provider_setup import write_config

MASTER_KEY = "sk-gw-vertex-up-test-key"
# Anything that would make `gateway up` use a real provider or a shared service.
PERSON, RED, BLUE = (205, 170, 150), (220, 20, 20), (20, 20, 220)


@dataclass
class Gateway:
    url: str
    lines: list[str]
    log: Path
    # Vertex calls recorded before the current test.
    seen: int = 0

    def emulator(self, provider: str) -> str:
        for line in self.lines:
            if match := re.match(rf"\s*emulated {provider}\s+(http://\S+)", line):
                return match.group(1)
        raise AssertionError(f"no emulated {provider} in {self.lines}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`gateway up --no-kafka` without any provider credentials."""
    folder = tmp_path_factory.mktemp("vertex-up")
    config = write_config(folder / "litellm_config.yaml")
    with gateway_up(config, master_key=MASTER_KEY) as running:
        yield Gateway(running.url, running.lines, running.log)


def _all_calls(gateway: Gateway) -> list[dict[str, Any]]:
    response = httpx.get(f"{gateway.emulator('vertex')}/_emulator/stats")
    response.raise_for_status()
    calls: list[dict[str, Any]] = response.json()["calls"]
    return calls


@pytest.fixture
def sdk(gateway: Gateway) -> Iterator[openai.OpenAI]:
    """The official SDK against the gateway; Fal reset, Vertex's records counted from here
    (a reset would also revoke the tokens the gateway holds)."""
    httpx.post(f"{gateway.emulator('fal')}/_emulator/reset").raise_for_status()
    gateway.seen = len(_all_calls(gateway))
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0) as client:
        yield client
    httpx.post(f"{gateway.emulator('fal')}/_emulator/reset").raise_for_status()


def _calls(gateway: Gateway) -> list[dict[str, Any]]:
    """The Vertex model calls made during this test."""
    return _all_calls(gateway)[gateway.seen :]


def _fal_down(gateway: Gateway) -> None:
    httpx.post(
        f"{gateway.emulator('fal')}/_emulator/fal/faults",
        json={"operation": "submit", "spec": "503", "count": None},
    ).raise_for_status()


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (60, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _look() -> list[tuple[str, bytes, str]]:
    return [
        ("person.png", _png(PERSON), "image/png"),
        ("shirt.png", _png(RED), "image/png"),
        ("trousers.png", _png(BLUE), "image/png"),
    ]


def test_the_vertex_emulator_and_its_service_account_are_announced(gateway: Gateway) -> None:
    """The start-up lines name the emulated Vertex, its project and location, and no secret."""
    assert gateway.emulator("vertex").startswith("http://")
    assert any("throw-away service account" in line for line in gateway.lines)
    text = "\n".join(gateway.lines) + gateway.log.read_text()
    assert "PRIVATE KEY" not in text
    assert "private_key" not in text


def test_generation_falls_back_to_vertex_at_several_sizes_and_ratios(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """With Fal failing, each size (and explicit ratio) is served by Vertex as mapped."""
    _fal_down(gateway)
    asks: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"size": "1024x1024"}, {"aspectRatio": "1:1", "imageSize": "1K"}),
        ({"size": "1536x1024"}, {"aspectRatio": "3:2", "imageSize": "2K"}),
        ({"size": "1024x1792"}, {"aspectRatio": "9:16", "imageSize": "2K"}),
        (
            {"extra_body": {"aspect_ratio": "4:5", "image_size": "4K"}},
            {"aspectRatio": "4:5", "imageSize": "4K"},
        ),
    ]
    for ask, _ in asks:
        raw = sdk.images.with_raw_response.generate(
            model="image-generation", prompt="a trench coat on a model", **ask
        )
        assert raw.headers["x-gateway-provider"] == "vertex"
        assert raw.headers["x-gateway-fallback"] == "true"
        data = raw.parse().data
        assert data is not None
        Image.open(io.BytesIO(base64.b64decode(data[0].b64_json or ""))).load()
    assert [c["image_config"] for c in _calls(gateway)] == [sent for _, sent in asks]


def test_a_try_on_with_two_garments_on_gemini(gateway: Gateway, sdk: openai.OpenAI) -> None:
    """The try-on task's Gemini edit gets the person and both garments in one call."""
    raw = sdk.images.with_raw_response.edit(
        model="virtual-try-on", image=_look(), prompt="dress the person in both garments"
    )
    assert raw.headers["x-gateway-model"] == "vertex/gemini-3-pro-image-preview"
    assert raw.headers["x-gateway-cost-usd"] == "0.134000"
    (call,) = _calls(gateway)
    assert (call["method"], call["images"]) == ("generateContent", 3)
    assert call["safety_settings"]


def test_a_try_on_with_two_garments_on_the_try_on_model(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """The dedicated model dresses the garments one per :predict; the output shows the last."""
    raw = sdk.images.with_raw_response.edit(
        model="virtual-try-on-fallback", image=_look(), prompt="try on"
    )
    assert raw.headers["x-gateway-model"] == "vertex/virtual-try-on-001"
    assert raw.headers["x-gateway-cost-usd"] == "0.120000"
    data = raw.parse().data
    assert data is not None
    output = Image.open(io.BytesIO(base64.b64decode(data[0].b64_json or ""))).convert("RGB")
    assert BLUE in {colour for _, colour in output.getcolors(1 << 22) or []}
    assert [c["method"] for c in _calls(gateway)] == ["predict", "predict"]


def test_a_blocked_prompt_is_a_content_policy_error_naming_the_reason(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """Vertex blocking the prompt (no content-policy fallback for the task) is a 400."""
    _fal_down(gateway)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="image-generation", prompt="a coat [[block:PROHIBITED_CONTENT]]")
    assert caught.value.code == "content_policy_violation"
    assert "PROHIBITED_CONTENT" in caught.value.message


def test_the_content_policy_fallback_serves_a_refused_try_on(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """Gemini refuses the try-on; the configured content-policy fallback serves it."""
    raw = sdk.images.with_raw_response.edit(
        model="virtual-try-on", image=_look(), prompt="try on [[finish:IMAGE_PROHIBITED_CONTENT]]"
    )
    assert raw.headers["x-gateway-model"] == "vertex/virtual-try-on-001"
    assert raw.headers["x-gateway-fallback"] == "true"


def test_fashion_analysis_runs_on_vertex_through_litellm(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """A vision chat on gemini-3-pro (LiteLLM's vertex_ai provider) answers, with the task's
    safety settings on the wire."""
    picture = base64.b64encode(_png(RED, (80, 80))).decode()
    completion = sdk.chat.completions.create(
        model="fashion-analysis",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this garment's colour and cut."},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{picture}"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content
    (call,) = _calls(gateway)
    assert call["model"] == "gemini-3-pro-preview"
    assert call["images"] == 1
    assert call["safety_settings"]
