"""Provider limits per deployment, with LiteLLM's real model info: images (count, size, format,
decodability), context windows, output caps, unsupported parameters, `n`, and route narrowing."""

from __future__ import annotations

import asyncio
import base64
import io
import os
from pathlib import Path
from typing import Any

import litellm
import msgspec
import pytest
import yaml
from PIL import Image

from core.config import ConfigError
from proxy.errors import BadRequestError, InvalidRequestError
from proxy.keys import KeyResolver
from proxy.limits import (
    DeploymentLimits,
    Limits,
    RequestProfile,
    RequestRefused,
    check,
    fan_out,
    limits_of,
)
from proxy.resilience import Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute
from proxy.settings import ResilienceSettings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "litellm_config.yaml"
TABLE = RoutingTable.from_config(yaml.safe_load(REPO_CONFIG.read_text()), {})
LIMITS = Limits.from_routing(TABLE)


def _route(task: str) -> TaskRoute:
    route = TABLE.get(task)
    assert route is not None
    return route


CAPTIONING = _route("captioning")
CLAUDE = LIMITS.of(CAPTIONING.deployments[0])
GEMINI = LIMITS.of(CAPTIONING.deployments[1])


def _png(size: tuple[int, int] = (16, 16), fmt: str = "PNG", noise: bool = False) -> bytes:
    image = (
        Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
        if noise
        else Image.new("RGB", size, (120, 30, 60))
    )
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def _with_images(*urls: str, text: str = "Describe these looks.") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {"messages": [{"role": "user", "content": parts}]}


def _text(text: str, **params: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **params}


def test_anthropic_limits_come_from_litellm_and_the_seeds() -> None:
    """Claude Sonnet 4's window and output cap are LiteLLM's; 20 images, 5 MB and no n."""
    assert (CLAUDE.max_input_tokens, CLAUDE.max_output_tokens) == (200000, 64000)
    assert CLAUDE.max_images_per_request == 20
    assert CLAUDE.max_image_bytes == 5 * 1024 * 1024
    assert not CLAUDE.native_n
    assert GEMINI.native_n and GEMINI.max_images_per_request == 3000


def test_model_info_gives_a_model_litellm_no_longer_maps_its_limits() -> None:
    """claude-3-5-sonnet has left LiteLLM's map; the config's model_info gives its window."""
    fallback = LIMITS.of(_route("styling").deployments[1])
    assert fallback.model == "anthropic/claude-3-5-sonnet-20241022"
    assert (fallback.max_input_tokens, fallback.max_output_tokens) == (200000, 8192)


def test_model_info_overrides_the_provider_default() -> None:
    """The video task's GPT-4o entry takes the seeds' 10 frames instead of OpenAI's 500."""
    gpt = LIMITS.of(_route("video-summarization").deployments[1])
    assert gpt.provider == "openai" and gpt.max_images_per_request == 10


def test_a_bad_model_info_value_stops_start_up_naming_the_entry() -> None:
    """A non-positive limit in model_info is a ConfigError naming the group."""
    deployment = msgspec.structs.replace(
        CAPTIONING.deployments[0], model_info={"max_images_per_request": 0}
    )
    with pytest.raises(ConfigError, match=r"captioning.*max_images_per_request"):
        limits_of(deployment)


def test_twenty_images_fit_anthropic_and_twenty_one_do_not() -> None:
    """The seeds' limit: 20 images per request on Anthropic, counted over image_url parts."""
    url = _data_url(_png())
    assert check(CLAUDE, _with_images(*[url] * 20)) is None
    found = check(CLAUDE, _with_images(*[url] * 21))
    assert found is not None and found.param == "messages"
    assert found.rule == "21 images exceed anthropic's 20 per request"


def test_http_images_are_counted_without_being_fetched() -> None:
    """Remote image URLs count towards the limit; an unresolvable host shows none is fetched."""
    urls = [f"https://images.invalid/look-{i}.jpg" for i in range(21)]
    found = check(CLAUDE, _with_images(*urls))
    assert found is not None and found.rule.startswith("21 images")


def test_an_image_over_the_size_limit_is_named_by_its_place() -> None:
    """An image above the deployment's bytes per image names its content part."""
    small = msgspec.structs.replace(CLAUDE, max_image_bytes=1000)
    found = check(small, _with_images(_data_url(_png((64, 64), noise=True))))
    assert found is not None and found.param == "messages[0].content[1].image_url"
    assert "exceed anthropic's 1000 per image" in found.rule


def test_an_image_wider_than_anthropic_takes_is_refused() -> None:
    """8001 px on a side exceeds Anthropic's 8000 px; Gemini has no such limit."""
    request = _with_images(_data_url(_png((8001, 4))))
    found = check(CLAUDE, request)
    assert found is not None and "8000 px a side" in found.rule
    assert check(GEMINI, request) is None


def test_an_image_format_the_provider_does_not_take_is_refused() -> None:
    """A BMP decodes, but Anthropic takes JPEG, PNG, GIF and WebP only."""
    found = check(CLAUDE, _with_images(_data_url(_png(fmt="BMP"), "image/bmp")))
    assert found is not None and found.rule.startswith("BMP images are not taken by anthropic")


def test_an_image_that_does_not_decode_is_refused_for_every_deployment() -> None:
    """Valid base64 that is no image raises RequestRefused naming the part."""
    with pytest.raises(RequestRefused) as refused:
        RequestProfile(_with_images(_data_url(b"definitely not a picture")))
    assert refused.value.param == "messages[0].content[1].image_url"


def test_a_truncated_png_does_not_decode() -> None:
    """A PNG cut short fails Pillow's verify without its pixels being decoded."""
    raw = _png((32, 32), noise=True)
    with pytest.raises(RequestRefused, match="does not decode"):
        RequestProfile(_with_images(_data_url(raw[: len(raw) // 2])))


def test_a_data_url_that_is_not_base64_is_refused() -> None:
    """A data URL without `;base64` cannot carry an image the providers read."""
    with pytest.raises(RequestRefused, match="must be base64"):
        RequestProfile(_with_images("data:image/png,plain"))


def test_a_short_request_is_never_token_counted() -> None:
    """Below half the window the character estimate suffices: no tokenizer runs."""
    profile = RequestProfile(_text("A navy pleated midi dress. " * 50))
    assert check(CLAUDE, profile) is None
    assert profile.token_counts == {}


def test_a_long_request_within_the_window_is_counted_and_served() -> None:
    """Above half the window the model's tokenizer counts, and the request still fits."""
    profile = RequestProfile(_text("silk " * 30000))
    assert check(CLAUDE, profile) is None
    counted = profile.token_counts[CLAUDE.model]
    assert 0 < counted < CLAUDE.max_input_tokens  # type: ignore[operator]


def test_a_request_beyond_the_context_window_is_refused_with_its_count() -> None:
    """Counted tokens above Claude's 200k window name `messages`; Gemini's 1M takes them."""
    profile = RequestProfile(_text("pleated silk dress " * 80000))
    found = check(CLAUDE, profile)
    assert found is not None and found.param == "messages"
    assert "context window of 200000" in found.rule
    assert check(GEMINI, profile) is None


def test_max_tokens_above_the_output_cap_names_the_parameter() -> None:
    """max_tokens above 64000 on Claude Sonnet 4 names max_tokens; max_completion_tokens too."""
    found = check(CLAUDE, _text("hi", max_tokens=64001))
    assert found is not None and found.param == "max_tokens"
    other = check(CLAUDE, _text("hi", max_completion_tokens=70000))
    assert other is not None and other.param == "max_completion_tokens"
    assert check(CLAUDE, _text("hi", max_tokens=64000)) is None


def test_a_parameter_anthropic_lacks_is_refused_unless_it_is_the_default() -> None:
    """logprobs=true is refused on Anthropic; logprobs=false and presence_penalty=0 ask nothing."""
    found = check(CLAUDE, _text("hi", logprobs=True))
    assert found is not None and found.param == "logprobs"
    assert "not supported by anthropic" in found.rule
    assert check(CLAUDE, _text("hi", logprobs=False, presence_penalty=0, n=1)) is None
    assert check(GEMINI, _text("hi", logprobs=True)) is None


def test_n_on_anthropic_is_served_by_separate_calls_but_not_when_streaming() -> None:
    """n=2 passes (fanned out), n=2 with a stream names n, n above the fan-out cap names n."""
    assert check(CLAUDE, _text("hi", n=2)) is None
    assert LIMITS.copies(CAPTIONING.deployments[0], _text("hi", n=2)) == 2
    assert LIMITS.copies(CAPTIONING.deployments[1], _text("hi", n=2)) == 1
    streamed = check(CLAUDE, _text("hi", n=2, stream=True))
    assert streamed is not None and streamed.param == "n"
    many = check(CLAUDE, _text("hi", n=CLAUDE.max_fanout + 1))
    assert many is not None and many.param == "n"


def test_narrowing_keeps_a_route_whose_primary_can_serve() -> None:
    """A text request keeps the whole route and gives no reason."""
    narrowed = LIMITS.narrow(CAPTIONING, _text("Caption this jacket."))
    assert narrowed.route is CAPTIONING and narrowed.reason is None


def test_narrowing_moves_a_request_the_primary_cannot_take_to_the_fallback() -> None:
    """21 images skip Anthropic: the Gemini fallback serves, the reason names the limit."""
    narrowed = LIMITS.narrow(CAPTIONING, _with_images(*[_data_url(_png())] * 21))
    assert [d.provider for d in narrowed.route.deployments] == ["gemini"]
    assert str(narrowed.reason) == "messages: 21 images exceed anthropic's 20 per request"


def test_narrowing_refuses_what_no_deployment_can_take_naming_the_primary_limit() -> None:
    """21 frames exceed every video-summarization provider: a 400 naming messages."""
    route = _route("video-summarization")
    with pytest.raises(InvalidRequestError) as refused:
        LIMITS.narrow(route, _with_images(*[_data_url(_png())] * 21))
    error = refused.value
    assert error.status_code == 400 and error.param == "messages"
    assert error.message.startswith("messages: 21 images exceed anthropic's 20 per request")
    assert "openai's 10" in error.message and "gemini's 16" in error.message


def test_narrowing_turns_an_undecodable_image_into_a_400() -> None:
    """An image that does not decode is an InvalidRequestError naming the part."""
    with pytest.raises(InvalidRequestError) as refused:
        LIMITS.narrow(CAPTIONING, _with_images(_data_url(b"\x89PNG broken")))
    assert refused.value.param == "messages[0].content[1].image_url"
    assert refused.value.to_openai_body()["error"]["param"] == refused.value.param


def test_a_stream_with_n_goes_to_a_fallback_with_native_n() -> None:
    """n=2 streamed cannot be fanned out on Claude, so Gemini (candidateCount) serves it."""
    narrowed = LIMITS.narrow(CAPTIONING, _text("Caption this.", n=2, stream=True))
    assert [d.provider for d in narrowed.route.deployments] == ["gemini"]
    assert narrowed.reason is not None and narrowed.reason.param == "n"


def test_content_policy_fallbacks_are_narrowed_too() -> None:
    """A content-policy fallback that cannot take the request is left out of the route."""
    claude, gemini = CAPTIONING.deployments
    route = TaskRoute(
        task="captioning", deployments=(claude, gemini), content_policy_deployments=(claude,)
    )
    narrowed = LIMITS.narrow(route, _with_images(*[_data_url(_png())] * 21))
    assert narrowed.route.content_policy_deployments == ()


def test_a_model_without_vision_takes_no_images() -> None:
    """supports_vision false (LiteLLM's or model_info's) refuses any image part."""
    blind = msgspec.structs.replace(CLAUDE, supports_vision=False)
    found = check(blind, _with_images("https://images.invalid/look.jpg"))
    assert found is not None and found.rule == "claude-sonnet-4-20250514 takes no images"
    assert check(blind, _text("no pictures here")) is None


async def _mocked(reply: str) -> Any:
    # LiteLLM's own mock_response path: a real ModelResponse with usage, no network.
    return await litellm.acompletion(
        model=CLAUDE.model,
        messages=[{"role": "user", "content": "Caption this."}],
        mock_response=reply,
    )


async def test_fan_out_merges_n_answers_into_indexed_choices_with_summed_usage() -> None:
    """Two LiteLLM answers become one with choices 0 and 1 and the usage of both."""
    replies = iter(["first look", "second look"])
    single = (await _mocked("first look")).usage
    merged = await fan_out(2, lambda: _mocked(next(replies)))
    assert [c.index for c in merged.choices] == [0, 1]
    assert [c.message.content for c in merged.choices] == ["first look", "second look"]
    assert merged.usage.prompt_tokens == 2 * single.prompt_tokens
    assert merged.usage.total_tokens == merged.usage.prompt_tokens + merged.usage.completion_tokens


async def test_fan_out_cancels_the_other_calls_when_one_fails() -> None:
    """One failing call fails the whole fan-out and cancels the calls still running."""
    cancelled: list[int] = []
    started = 0

    async def one() -> Any:
        nonlocal started
        started += 1
        me = started
        if me == 2:
            raise ValueError("provider refused")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(me)
            raise

    with pytest.raises(ValueError, match="provider refused"):
        await fan_out(3, one)
    assert sorted(cancelled) == [1, 3]


async def test_litellm_unsupported_params_end_the_chain_after_one_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LiteLLM's UnsupportedParamsError is a 400: one attempt, no retry, no fallback."""
    # An in-process proxy started earlier in the session applies the config's
    # `litellm_settings.drop_params: true` to LiteLLM's module state, which beats the call's own
    # drop_params=False; this test needs LiteLLM as it is without that config.
    monkeypatch.setattr(litellm, "drop_params", False)
    calls: list[str] = []

    async def call(deployment: Deployment, key: str) -> Any:
        calls.append(deployment.provider)
        return await litellm.acompletion(
            model=deployment.model,
            messages=[{"role": "user", "content": "hi"}],
            logprobs=True,
            drop_params=False,
            api_key=key,
        )

    settings = ResilienceSettings(attempts=3, backoff_base_s=0, backoff_max_s=0)
    keys = KeyResolver({"ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "gm-test"})
    with pytest.raises(BadRequestError):
        await Resilience(settings, keys).run(CAPTIONING, None, call)
    assert calls == ["anthropic"]


def test_deployment_limits_are_frozen() -> None:
    """Limits are computed once and cannot be changed per request."""
    limits: DeploymentLimits = CLAUDE
    with pytest.raises(AttributeError):
        limits.max_images_per_request = 100  # type: ignore[misc]
