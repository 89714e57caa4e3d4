"""VertexImages against the Vertex emulator: generation, multi-image try-on on both models,
safety settings on the wire, refusals, faults, and service-account tokens."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from PIL import Image

from emulators.testing import VertexHandle
from plugins.vertex import (
    TokenCache,
    VertexAuthError,
    VertexContentPolicy,
    VertexCredentialsError,
    VertexImages,
    VertexRateLimited,
    VertexUnavailable,
    parse_image_request,
)
from plugins.vertex.edits import parse_edit_request

GEMINI = "vertex/gemini-3-pro-image-preview"
TRY_ON = "vertex/virtual-try-on-001"
PERMISSIVE = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "BLOCK_ONLY_HIGH"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"},
]


@pytest.fixture
def vertex(vertex_emulator: VertexHandle) -> Iterator[VertexHandle]:
    """The Vertex emulator, reset before and after the test."""
    vertex_emulator.reset()
    yield vertex_emulator
    vertex_emulator.reset()


@pytest.fixture
def key(vertex: VertexHandle) -> str:
    """A throw-away service account of the emulator, as the JSON text a stored key holds."""
    return json.dumps(vertex.service_account())


@pytest.fixture
async def provider() -> AsyncIterator[VertexImages]:
    """A started VertexImages with a permissive Gemini group and a try-on group."""
    images = VertexImages()
    images.configure("gen", GEMINI, {"safety_settings": PERMISSIVE})
    images.configure("tryon", TRY_ON, {"safety_filter_level": "block_only_high"})
    await images.start()
    yield images
    await images.stop()


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (60, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _decoded(answer: dict[str, object], index: int = 0) -> Image.Image:
    data = answer["data"]
    assert isinstance(data, list)
    return Image.open(io.BytesIO(base64.b64decode(data[index]["b64_json"]))).convert("RGB")


async def test_generation_sends_image_config_and_returns_n_images(
    vertex: VertexHandle, provider: VertexImages, key: str
) -> None:
    """n=2 at 1792x1024 are two 16:9 calls whose images decode, at a 2K size."""
    request = parse_image_request({"prompt": "a linen suit", "n": 2, "size": "1792x1024"})
    answer = await provider.generate(
        provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key, group="gen"
    )
    assert len(answer["data"]) == 2
    width, height = _decoded(answer, 1).size
    assert abs(width / height - 16 / 9) < 0.02
    calls = vertex.calls()
    assert [c["image_config"] for c in calls] == [{"aspectRatio": "16:9", "imageSize": "2K"}] * 2


async def test_the_groups_safety_settings_reach_the_request(
    vertex: VertexHandle, provider: VertexImages, key: str
) -> None:
    """What the group's config says is what the emulator received."""
    request = parse_image_request({"prompt": "a swimsuit on a beach"})
    await provider.generate(
        provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key, group="gen"
    )
    assert vertex.calls()[0]["safety_settings"] == PERMISSIVE


async def test_permissive_settings_let_a_medium_rating_through(
    vertex: VertexHandle, provider: VertexImages, key: str
) -> None:
    """A MEDIUM sexual-content rating is served under BLOCK_ONLY_HIGH and refused without it."""
    prompt = "lingerie catalogue [[block:SAFETY:SEXUALLY_EXPLICIT:MEDIUM]]"
    request = parse_image_request({"prompt": prompt})
    served = await provider.generate(
        provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key, group="gen"
    )
    assert served["data"]
    with pytest.raises(VertexContentPolicy) as caught:
        await provider.generate(
            provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key, group="none"
        )
    assert caught.value.reason == "SAFETY"


async def test_a_try_on_on_gemini_sends_person_and_garments_in_one_call(
    vertex: VertexHandle, provider: VertexImages, key: str
) -> None:
    """A person and two garments are one generateContent call carrying three images."""
    request = parse_edit_request(
        {"prompt": "dress the person in both garments"},
        [_png((200, 170, 150)), _png((220, 20, 20)), _png((20, 20, 220))],
        None,
    )
    answer = await provider.generate(
        provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key, group="gen"
    )
    assert _decoded(answer).size[0] > 0
    (call,) = vertex.calls()
    assert (call["method"], call["images"]) == ("generateContent", 3)


async def test_a_try_on_on_the_dedicated_model_dresses_one_garment_per_step(
    vertex: VertexHandle, provider: VertexImages, key: str
) -> None:
    """Two garments are two :predict calls; the last garment's colour is in the output."""
    request = parse_edit_request(
        {"prompt": "try on", "n": "2"},
        [_png((200, 170, 150)), _png((220, 20, 20)), _png((20, 20, 220))],
        None,
    )
    answer = await provider.generate(
        provider.new_job(), request, model=TRY_ON, api_base=vertex.url, key=key, group="tryon"
    )
    assert len(answer["data"]) == 2
    colours = {colour for _, colour in _decoded(answer).getcolors(1 << 22) or []}
    assert (20, 20, 220) in colours
    calls = vertex.calls()
    assert [c["method"] for c in calls] == ["predict", "predict"]
    assert [c["parameters"]["sampleCount"] for c in calls] == [1, 2]
    assert calls[0]["parameters"]["safetySetting"] == "block_only_high"
    assert provider.billed_images(request, TRY_ON) == 3


async def test_a_retry_keeps_the_images_already_made(
    vertex: VertexHandle, provider: VertexImages, key: str
) -> None:
    """When one of n calls fails, calling again with the same job makes only the missing one."""
    request = parse_image_request({"prompt": "a scarf", "n": 2})
    job = provider.new_job()
    vertex.set_fault("503", count=1)
    with pytest.raises(VertexUnavailable):
        await provider.generate(job, request, model=GEMINI, api_base=vertex.url, key=key)
    answer = await provider.generate(job, request, model=GEMINI, api_base=vertex.url, key=key)
    assert len(answer["data"]) == 2
    assert len([c for c in vertex.calls() if c["status"] == 200]) == 2


async def test_resource_exhausted_is_a_retriable_rate_limit(
    vertex: VertexHandle, provider: VertexImages, key: str
) -> None:
    """A 429 RESOURCE_EXHAUSTED answer is VertexRateLimited, which the policy retries."""
    vertex.set_fault("429", count=1)
    with pytest.raises(VertexRateLimited) as caught:
        await provider.generate(
            provider.new_job(),
            parse_image_request({"prompt": "a hat"}),
            model=GEMINI,
            api_base=vertex.url,
            key=key,
        )
    assert caught.value.retriable


async def test_a_token_is_minted_once_and_reminted_after_it_is_revoked(
    vertex: VertexHandle, key: str
) -> None:
    """Calls share one cached token; after Google revokes it, one 401, then a new token."""
    tokens = TokenCache()
    provider = VertexImages(tokens=tokens)
    await provider.start()
    request = parse_image_request({"prompt": "a glove"})
    try:
        for _ in range(3):
            await provider.generate(
                provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key
            )
        assert tokens.refreshes == 1
        vertex.expire_tokens()
        with pytest.raises(VertexAuthError):
            await provider.generate(
                provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key
            )
        await provider.generate(
            provider.new_job(), request, model=GEMINI, api_base=vertex.url, key=key
        )
        assert tokens.refreshes == 2
    finally:
        await provider.stop()


async def test_a_token_near_its_expiry_is_refreshed_before_use(
    vertex: VertexHandle, key: str
) -> None:
    """With tokens living less than the refresh margin, every call mints a fresh one."""
    vertex.configure_vertex(token_lifetime_s=60)
    tokens = TokenCache()
    provider = VertexImages(tokens=tokens)
    await provider.start()
    try:
        for _ in range(2):
            await provider.generate(
                provider.new_job(),
                parse_image_request({"prompt": "a sock"}),
                model=GEMINI,
                api_base=vertex.url,
                key=key,
            )
    finally:
        await provider.stop()
    assert tokens.refreshes == 2


@pytest.mark.parametrize(
    ("credential", "named"),
    [
        ("", "GOOGLE_APPLICATION_CREDENTIALS"),
        ("/nonexistent/service-account.json", "GOOGLE_APPLICATION_CREDENTIALS"),
        ('{"type": "authorized_user"}', "service account"),
    ],
)
async def test_unusable_credentials_name_what_to_set(
    provider: VertexImages, credential: str, named: str
) -> None:
    """No credentials, an unreadable file or another kind of credential says what to set."""
    with pytest.raises(VertexCredentialsError) as caught:
        await provider.generate(
            provider.new_job(),
            parse_image_request({"prompt": "a tie"}),
            model=GEMINI,
            api_base="http://127.0.0.1:9",
            key=credential,
        )
    assert named in caught.value.message
    assert "GOOGLE_CLOUD_PROJECT" in caught.value.message


async def test_no_project_anywhere_names_google_cloud_project(
    vertex: VertexHandle, provider: VertexImages
) -> None:
    """A service account without project_id and no vertex_project asks for the project."""
    info = vertex.service_account()
    del info["project_id"]
    with pytest.raises(VertexCredentialsError, match="GOOGLE_CLOUD_PROJECT"):
        await provider.generate(
            provider.new_job(),
            parse_image_request({"prompt": "a belt"}),
            model=GEMINI,
            api_base=vertex.url,
            key=json.dumps(info),
        )
