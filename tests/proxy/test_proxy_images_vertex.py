"""The image routes on the repository's config with Vertex AI behind them (the Vertex and Fal
emulators), through the official openai SDK: try-on on both models, Fal -> Vertex fallback,
content-policy refusals and their fallback, safety settings from config, bad input, costs.

The gateway here is the fast path and the media routes served in the test's loop (no LiteLLM
app: the image routes never reach it), so each test may build it from its own config copy; it
is the image-kind tests' `media_gateway`.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from PIL import Image
from provider_setup import REPO_CONFIG

from core.config import ConfigError
from core.redact import Redactor
from emulators.testing import FalHandle, VertexHandle
from proxy.keys import KeyResolver
from proxy.media import MediaApp
from proxy.resilience import Resilience
from proxy.routing import RoutingTable
from proxy.settings import ResilienceSettings
from tests.pipelines.image_support import media_gateway, not_found, provider_env

MASTER_KEY = "sk-gw-vertex-images-test-9c1d"
PERSON, RED, BLUE = (205, 170, 150), (220, 20, 20), (20, 20, 220)


def _config(folder: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    data = yaml.safe_load(REPO_CONFIG.read_text())
    if edit is not None:
        edit(data)
    path = folder / "litellm_config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def vertex(vertex_emulator: VertexHandle) -> Iterator[VertexHandle]:
    vertex_emulator.reset()
    yield vertex_emulator
    vertex_emulator.reset()


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.01, run_s=0.02)
    yield fal_emulator
    fal_emulator.reset()


@pytest.fixture
def env(tmp_path: Path, vertex: VertexHandle, fal: FalHandle) -> dict[str, str]:
    """Keys and bases of both providers: a throw-away service account file for Vertex."""
    return provider_env(tmp_path, fal, vertex)


@pytest.fixture
async def sdk(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK against a gateway on the repository's config."""
    async with (
        media_gateway(_config(tmp_path), env, MASTER_KEY) as url,
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as client,
    ):
        yield client


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


async def test_generation_falls_back_from_fal_to_vertex_at_each_size(
    sdk: openai.AsyncOpenAI, vertex: VertexHandle, fal: FalHandle
) -> None:
    """With Fal's submit failing, Vertex serves each size with its mapped imageConfig."""
    fal.set_queue_fault("submit", "503", count=None)
    sizes = {"1024x1024": "1:1", "1792x1024": "16:9", "1024x1536": "2:3"}
    for size in sizes:
        raw = await sdk.images.with_raw_response.generate(
            model="image-generation",
            prompt="a camel coat",
            size=size,  # type: ignore[arg-type]
        )
        assert raw.headers["x-gateway-provider"] == "vertex"
        assert raw.headers["x-gateway-fallback"] == "true"
        assert raw.headers["x-gateway-cost-usd"] == "0.134000"
        picture = raw.parse().data
        assert picture is not None and picture[0].b64_json
    assert [c["image_config"]["aspectRatio"] for c in vertex.calls()] == list(sizes.values())


async def test_a_try_on_with_two_garments_is_one_gemini_edit(
    sdk: openai.AsyncOpenAI, vertex: VertexHandle
) -> None:
    """A person and two garments (image[] repeated, as the SDK sends a list) reach Gemini as
    one call with three images, under the task's safety settings."""
    raw = await sdk.images.with_raw_response.edit(
        model="virtual-try-on", image=_look(), prompt="dress the person in both garments"
    )
    assert raw.headers["x-gateway-model"] == "vertex/gemini-3-pro-image-preview"
    assert raw.headers["x-gateway-cost-usd"] == "0.134000"
    (call,) = vertex.calls()
    assert call["images"] == 3
    categories = {s["category"]: s["threshold"] for s in call["safety_settings"]}
    assert categories["HARM_CATEGORY_SEXUALLY_EXPLICIT"] == "BLOCK_ONLY_HIGH"


async def test_a_refused_try_on_is_served_by_the_content_policy_fallback(
    sdk: openai.AsyncOpenAI, vertex: VertexHandle
) -> None:
    """Gemini blocks the prompt; the try-on model (which takes no prompt) dresses both
    garments one after the other."""
    raw = await sdk.images.with_raw_response.edit(
        model="virtual-try-on", image=_look(), prompt="try on [[block:PROHIBITED_CONTENT]]"
    )
    assert raw.headers["x-gateway-model"] == "vertex/virtual-try-on-001"
    assert raw.headers["x-gateway-fallback"] == "true"
    assert raw.headers["x-gateway-cost-usd"] == "0.120000"  # two steps at $0.06
    answer = raw.parse().data
    assert answer is not None
    output = Image.open(io.BytesIO(base64.b64decode(answer[0].b64_json or ""))).convert("RGB")
    assert BLUE in {colour for _, colour in output.getcolors(1 << 22) or []}
    assert [c["method"] for c in vertex.calls()] == ["generateContent", "predict", "predict"]


async def test_a_refusal_without_a_content_policy_fallback_is_a_400_naming_the_reason(
    sdk: openai.AsyncOpenAI, vertex: VertexHandle, fal: FalHandle
) -> None:
    """Generation falls to Vertex, which blocks the prompt: 400 content_policy_violation."""
    fal.set_queue_fault("submit", "503", count=None)
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.images.generate(model="image-generation", prompt="x [[finish:IMAGE_SAFETY]]")
    assert caught.value.code == "content_policy_violation"
    assert "IMAGE_SAFETY" in caught.value.message
    assert len(vertex.calls()) == 1


async def test_a_filtered_try_on_is_a_400_naming_the_filters_reason(
    sdk: openai.AsyncOpenAI, vertex: VertexHandle
) -> None:
    """Every sample filtered by the try-on model is a content-policy 400 with its reason."""
    vertex.force_block("[[rai:Person image filtered]]", count=None)
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.images.edit(model="virtual-try-on-fallback", image=_look(), prompt="try on")
    assert caught.value.code == "content_policy_violation"
    assert "Person image filtered" in caught.value.message


async def test_an_edit_of_the_configs_safety_settings_changes_what_is_sent(
    tmp_path: Path, env: dict[str, str], vertex: VertexHandle
) -> None:
    """The try-on task's safety settings are what the emulator records, before and after
    the config is edited."""

    def stricter(data: dict[str, Any]) -> None:
        for entry in data["model_list"]:
            if entry["model_name"] == "virtual-try-on":
                entry["litellm_params"]["safety_settings"] = [
                    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}
                ]

    sent = []
    for index, edit in enumerate((None, stricter)):
        folder = tmp_path / str(index)
        folder.mkdir()
        async with (
            media_gateway(_config(folder, edit), env, MASTER_KEY) as url,
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as client,
        ):
            await client.images.edit(model="virtual-try-on", image=_look(), prompt="try on")
        sent.append(vertex.calls()[-1]["safety_settings"])
    assert len(sent[0]) == 5
    assert sent[1] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}]


def _noise_png(megabytes: float) -> bytes:
    side = int((megabytes * 1024 * 1024 / 3) ** 0.5) + 1
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("images", "param", "says"),
    [
        ([], "image", "image"),
        ([("notes.txt", b"a person in a coat", "text/plain")], "image", "decodable"),
        ([("big.png", _noise_png(7.5), "image/png")], "image", "7 MB"),
        ([("look.png", _png(PERSON), "image/png")] * 15, "image", "at most 14"),
    ],
    ids=["no-image", "not-an-image", "over-the-size-limit", "too-many-images"],
)
async def test_bad_try_on_input_is_a_400_before_any_call(
    sdk: openai.AsyncOpenAI,
    vertex: VertexHandle,
    images: list[tuple[str, bytes, str]],
    param: str,
    says: str,
) -> None:
    """A missing, undecodable, too large or one-too-many image is refused, naming it."""
    with pytest.raises(openai.BadRequestError) as caught:
        if images:
            await sdk.images.edit(model="virtual-try-on", image=images, prompt="try on")
        else:
            await sdk.post(
                "/images/edits",
                body={"model": "virtual-try-on", "prompt": "x"},
                files=[("mask", ("m.png", _png((255, 255, 255)), "image/png"))],
                options={"headers": {"Content-Type": "multipart/form-data"}},
                cast_to=dict,
            )
    assert caught.value.param == param
    assert says in caught.value.message
    assert vertex.calls() == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"size": "1000x300"}, "size"),
        ({"extra_body": {"aspect_ratio": "7:3"}}, "aspect_ratio"),
        ({"extra_body": {"image_size": "8K"}}, "image_size"),
    ],
)
async def test_a_size_or_ratio_vertex_cannot_make_is_a_400_before_any_call(
    sdk: openai.AsyncOpenAI,
    vertex: VertexHandle,
    fal: FalHandle,
    extra: dict[str, Any],
    param: str,
) -> None:
    """image-generation refuses what its Vertex fallback cannot make, before Fal is called."""
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.images.generate(model="image-generation", prompt="a hat", **extra)
    assert caught.value.param == param
    assert vertex.calls() == []
    assert fal.queue_stats()["jobs"] == 0


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        (
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "BLOCK_FEW"},
            "virtual-try-on.safety_settings[0].threshold",
        ),
        (
            {"category": "HARM_CATEGORY_CATWALK", "threshold": "BLOCK_NONE"},
            "virtual-try-on.safety_settings[0].category",
        ),
    ],
)
def test_an_invalid_safety_setting_stops_the_start_naming_it(
    tmp_path: Path, entry: dict[str, str], named: str
) -> None:
    """A bad threshold or category in the config is a ConfigError at start-up naming it."""

    def bad(data: dict[str, Any]) -> None:
        for item in data["model_list"]:
            if item["model_name"] == "virtual-try-on":
                item["litellm_params"]["safety_settings"] = [entry]

    config = _config(tmp_path, bad)
    routing = RoutingTable.from_config(yaml.safe_load(config.read_text()), {})
    resilience = Resilience(ResilienceSettings(), KeyResolver({}))
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        MediaApp.from_config(
            not_found,
            config_path=str(config),
            routing=routing,
            resilience=resilience,
            redactor=Redactor(),
        )


async def test_missing_vertex_credentials_name_what_to_set(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Without GOOGLE_APPLICATION_CREDENTIALS the try-on fails naming it and the project."""
    del env["GOOGLE_APPLICATION_CREDENTIALS"]
    async with (
        media_gateway(_config(tmp_path), env, MASTER_KEY) as url,
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as client,
    ):
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.images.edit(model="virtual-try-on", image=_look(), prompt="try on")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.message
    assert "GOOGLE_CLOUD_PROJECT" in caught.value.message
