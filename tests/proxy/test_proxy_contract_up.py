"""The OpenAI contract through `gateway up` (emulated providers) with the official openai SDK:
a caller's mistake is a 400 naming the field before any provider is called, an oversized body
is a 413, a provider's own 400 is answered after exactly one attempt with no fallback, and no
error body carries a traceback or a source path."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from gateway_process import gateway_up
from PIL import Image
from provider_setup import write_config

MASTER_KEY = "sk-gw-contract-up-test-key"
MAX_BODY = 256 * 1024
PROVIDERS = ("anthropic", "gemini", "fal")
USER = {"role": "user", "content": "Caption a red linen shirt (contract-up)."}


@dataclass(frozen=True)
class Gateway:
    url: str
    emulators: dict[str, str]

    def requests(self) -> dict[str, int]:
        """Requests each emulator has received so far (Fal: jobs submitted)."""
        counts = {}
        for name, url in self.emulators.items():
            path = "/_emulator/fal/stats" if name == "fal" else "/_emulator/stats"
            stats = httpx.get(f"{url}{path}").json()
            counts[name] = int(stats["jobs" if name == "fal" else "requests"])
        return counts

    def fault(self, provider: str, spec: str, count: int) -> None:
        body = {"spec": spec, "count": count}
        url = f"{self.emulators[provider]}/_emulator/faults"
        httpx.post(url, json=body).raise_for_status()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`gateway up --no-kafka` without provider keys, a 256 KiB body limit, and the emulators."""

    def small_bodies(data: dict[str, Any]) -> None:
        data["gateway_settings"]["limits"] = {"max_body_bytes": MAX_BODY}

    config = write_config(
        tmp_path_factory.mktemp("contract-up") / "litellm_config.yaml", small_bodies
    )
    with gateway_up(config, master_key=MASTER_KEY) as running:
        yield Gateway(running.url, running.emulator_bases(PROVIDERS))


@pytest.fixture
def sdk(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=60
    ) as client:
        yield client


def _assert_no_internals(text: str) -> None:
    assert "Traceback" not in text
    assert not re.search(r"[\w-]+\.py\b", text), text


BAD_CHATS: list[tuple[dict[str, Any], str]] = [
    ({"temperature": 5}, "temperature"),
    ({"messages": [{"role": "robot", "content": "beep"}]}, "messages[0].role"),
    (
        {"messages": [USER, {"role": "tool", "tool_call_id": "call_x", "content": "M"}]},
        "messages[1].tool_call_id",
    ),
    (
        {
            "tools": [{"type": "function", "function": {"name": "find_size"}}],
            "tool_choice": {"type": "function", "function": {"name": "find_colour"}},
        },
        "tool_choice.function.name",
    ),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "two words"}}},
        "response_format.json_schema.name",
    ),
    ({"extra_body": {"api_base": "http://127.0.0.1:9"}}, "api_base"),
]


@pytest.mark.parametrize(
    ("arguments", "param"),
    BAD_CHATS,
    ids=["range", "role", "tool-answer", "tool-choice", "json-schema-name", "unknown-argument"],
)
def test_a_bad_chat_request_is_a_400_naming_the_field(
    gateway: Gateway, sdk: openai.OpenAI, arguments: dict[str, Any], param: str
) -> None:
    """Each mistake raises the SDK's BadRequestError with the field as `param`, and reaches
    no provider."""
    call: dict[str, Any] = {"model": "captioning", "messages": [USER], **arguments}
    before = gateway.requests()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(**call)
    assert refused.value.param == param
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["type"] == "invalid_request_error"
    assert gateway.requests() == before
    _assert_no_internals(refused.value.response.text)


def test_a_bad_image_request_is_a_400_before_any_fal_job(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """An images.generate quality outside OpenAI's values names `quality`; Fal gets no job."""
    before = gateway.requests()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.images.generate(
            model="image-generation",
            prompt="a denim jacket",
            quality="ultra",  # type: ignore[arg-type]
        )
    assert refused.value.param == "quality"
    assert gateway.requests() == before


def test_an_oversized_body_is_a_413(gateway: Gateway, sdk: openai.OpenAI) -> None:
    """A chat request over limits.max_body_bytes is answered 413 request_too_large, unserved."""
    before = gateway.requests()
    big = {"role": "user", "content": "x" * (MAX_BODY + 1024)}
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="captioning", messages=[big])
    assert refused.value.status_code == 413
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "request_too_large"
    assert gateway.requests() == before


def test_a_providers_400_is_one_attempt_and_no_fallback(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """A request the contract passes but the provider refuses is tried once, not on Gemini."""
    before = gateway.requests()
    gateway.fault("anthropic", "400", 1)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="captioning", messages=[USER])
    after = gateway.requests()
    assert after["anthropic"] == before["anthropic"] + 1
    assert after["gemini"] == before["gemini"]
    _assert_no_internals(refused.value.response.text)


def test_chat_on_an_image_task_is_a_400_naming_the_model(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """A chat completion asked of an image-only task is refused on `model`, never retried."""
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="virtual-try-on", messages=[USER])
    assert refused.value.param == "model"
    assert "does not serve chat completions" in refused.value.message
    _assert_no_internals(refused.value.response.text)


def test_an_edit_without_an_editing_task_is_a_400_in_openais_shape(
    gateway: Gateway, sdk: openai.OpenAI
) -> None:
    """images.edit naming a chat task is refused on `model` in OpenAI's error shape."""
    png = _png()
    before = gateway.requests()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.images.edit(model="captioning", image=("shirt.png", png), prompt="make it blue")
    assert refused.value.param == "model"
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["type"] == "invalid_request_error"
    assert gateway.requests() == before


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, format="PNG")
    return buffer.getvalue()
