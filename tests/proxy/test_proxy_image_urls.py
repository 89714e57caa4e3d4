"""A chat's http(s) image URLs: fetched once by the gateway through the guarded fetcher, never
by LiteLLM or a provider on the gateway's network; refused when they point inside it."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from image_server import serving
from local_gateway import MASTER_KEY as LOCAL_MASTER_KEY
from local_gateway import local_gateway
from PIL import Image

from emulators.testing import EmulatorHandle
from proxy.image_urls import ImageUrls, ImageUrlSettings


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (180, 40, 60)).save(out, format="PNG")
    return out.getvalue()


def _look(*urls: str) -> list[dict[str, Any]]:
    images = [{"type": "image_url", "image_url": {"url": url, "detail": "low"}} for url in urls]
    return [{"role": "user", "content": [{"type": "text", "text": "describe the look"}, *images]}]


@pytest.mark.parametrize("task", ["captioning", "styling", "video-summarization-gpt-4o"])
def test_an_image_url_inside_the_network_is_refused_before_any_provider_call(
    task: str, client: openai.OpenAI
) -> None:
    """On every provider (Anthropic, Gemini, OpenAI), a loopback image URL is a 400 naming the
    part and the refusal, and the image server never hears from anyone."""
    with serving({"/look.png": (_png(), "image/png")}) as server:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=task, messages=_look(f"{server.url}/look.png"))  # type: ignore[arg-type]
        assert server.hits["/look.png"] == 0
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert "refused" in error["message"] and "loopback" in error["message"]


@contextlib.asynccontextmanager
async def _allowing(openai_emulator: EmulatorHandle) -> AsyncIterator[openai.AsyncOpenAI]:
    """An SDK client of a gateway whose `image_urls.fetch_allow` names 127.0.0.1, in front of
    the OpenAI emulator (task `local`)."""
    allowing = ImageUrls(ImageUrlSettings(fetch_allow=("127.0.0.1",)))
    async with (
        local_gateway(f"{openai_emulator.url}/v1", image_urls=allowing) as url,
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=LOCAL_MASTER_KEY, max_retries=0) as sdk,
    ):
        yield sdk


async def test_an_allow_listed_image_is_fetched_once_and_sent_inline(
    openai_emulator: EmulatorHandle,
) -> None:
    """With the address in `image_urls.fetch_allow`, the gateway fetches each distinct image
    once (the same URL twice in a message is one fetch) and the provider gets both images."""
    with serving({"/look.png": (_png(), "image/png")}) as server:
        look = f"{server.url}/look.png"
        async with _allowing(openai_emulator) as sdk:
            answer = await sdk.chat.completions.create(model="local", messages=_look(look, look))  # type: ignore[arg-type]
        assert server.hits["/look.png"] == 1
    assert "2 image(s)" in (answer.choices[0].message.content or "")


async def test_an_allow_listed_url_that_is_no_image_is_a_400_naming_the_part(
    openai_emulator: EmulatorHandle,
) -> None:
    """A 404, or a page that is not an image, is a 400 at its part, before the provider."""
    before = openai_emulator.stats()["requests"]
    files = {"/look.png": (_png(), "image/png"), "/page": (b"<html></html>", "text/html")}
    with serving(files) as server:
        async with _allowing(openai_emulator) as sdk:
            for path, said in (("/missing.png", "404"), ("/page", "text/html")):
                with pytest.raises(openai.BadRequestError) as refused:
                    await sdk.chat.completions.create(
                        model="local",
                        messages=_look(f"{server.url}/look.png", f"{server.url}{path}"),  # type: ignore[arg-type]
                    )
                body = refused.value.body
                assert isinstance(body, dict) and said in body["message"]
                assert body["param"] == "messages[0].content[2].image_url.url"
    assert openai_emulator.stats()["requests"] == before
