"""The Anthropic emulator refuses what the Messages API refuses, seen through the anthropic SDK."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from emulators.testing import EmulatorHandle

MODEL = "claude-sonnet-4"
TOOL: dict[str, Any] = {
    "name": "lookup_sku",
    "input_schema": {"type": "object", "properties": {"sku": {"type": "string"}}},
}


@pytest.fixture
def client(anthropic_em: EmulatorHandle) -> Iterator[anthropic.Anthropic]:
    """A sync SDK client without retries, so each call is one attempt."""
    with anthropic.Anthropic(base_url=anthropic_em.url, api_key="sk-ant-test", max_retries=0) as c:
        yield c


def _user(content: Any) -> list[Any]:
    return [{"role": "user", "content": content}]


def _image(data: str, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _refusal(client: anthropic.Anthropic, **kwargs: Any) -> str:
    """The message of the invalid_request_error that ``messages.create(**kwargs)`` raises."""
    # An explicit timeout stops the SDK from insisting on streaming for a large max_tokens.
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": _user("hi"),
        "timeout": 30,
    }
    params.update(kwargs)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**params)
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    return str(body["error"]["message"])


def _accepted(client: anthropic.Anthropic, **kwargs: Any) -> Message:
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": _user("hi"),
        "timeout": 30,
    }
    params.update(kwargs)
    result: Message = client.messages.create(**params)
    return result


def test_missing_max_tokens_is_field_required(client: anthropic.Anthropic) -> None:
    """A request without max_tokens is refused as the API words it."""
    assert _refusal(client, max_tokens=anthropic.omit) == "max_tokens: Field required"


def test_max_tokens_above_the_model_cap_is_refused(client: anthropic.Anthropic) -> None:
    """max_tokens above the model's output cap is refused, naming the cap and the model."""
    message = _refusal(client, max_tokens=64001)
    assert message == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for "
        "claude-sonnet-4"
    )


def test_max_tokens_at_the_cap_is_accepted(client: anthropic.Anthropic) -> None:
    """max_tokens exactly at the model's cap is served."""
    assert _accepted(client, max_tokens=64000).stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 1.5, "temperature: range: 0..1"),
        ("temperature", -0.1, "temperature: range: 0..1"),
        ("top_p", 1.2, "top_p: range: 0..1"),
        ("top_k", -1, "top_k: Input should be greater than or equal to 0"),
    ],
)
def test_sampling_parameters_out_of_range_are_refused(
    client: anthropic.Anthropic, field: str, value: float, message: str
) -> None:
    """Sampling parameters outside their range are refused with the API's range text."""
    assert _refusal(client, extra_body={field: value}) == message


def test_sampling_parameters_at_their_bounds_are_accepted(client: anthropic.Anthropic) -> None:
    """temperature 1, top_p 1 and top_k 0 are all still served."""
    assert _accepted(client, extra_body={"temperature": 1, "top_p": 1.0, "top_k": 0}).content


def test_unknown_top_level_field_is_an_extra_input(client: anthropic.Anthropic) -> None:
    """A field the API does not define is refused, naming it."""
    assert _refusal(client, extra_body={"foo": 1}) == "foo: Extra inputs are not permitted"


def test_fields_litellm_sends_are_accepted(client: anthropic.Anthropic) -> None:
    """metadata, tools, tool_choice, stop_sequences and a system block list are all served."""
    result = _accepted(
        client,
        system=[{"type": "text", "text": "You are a stylist."}],
        metadata={"user_id": "u-1"},
        tools=[TOOL],
        tool_choice={"type": "auto"},
        stop_sequences=["END"],
    )
    assert result.stop_reason == "tool_use"


def test_system_role_message_is_refused(client: anthropic.Anthropic) -> None:
    """A "system" message points the caller at the top-level system parameter."""
    message = _refusal(client, messages=[{"role": "system", "content": "be brief"}])
    assert message.startswith('messages: Unexpected role "system".')


def test_unknown_role_is_refused(client: anthropic.Anthropic) -> None:
    """A role other than user or assistant is refused at its path."""
    message = _refusal(client, messages=[{"role": "bot", "content": "hi"}])
    assert message == "messages.0.role: Input should be 'user' or 'assistant'"


def test_unknown_content_block_type_is_refused(client: anthropic.Anthropic) -> None:
    """A block type the API does not define is refused as an unmatched tag."""
    message = _refusal(client, messages=_user([{"type": "video", "url": "x"}]))
    assert message.startswith(
        "messages.0.content.0: Input tag 'video' found using 'type' does not match any of the "
        "expected tags: 'text', 'image'"
    )


def test_unknown_tool_choice_type_is_refused(client: anthropic.Anthropic) -> None:
    """tool_choice of an unknown type is refused, listing the four it may be."""
    message = _refusal(client, tools=[TOOL], tool_choice={"type": "sometimes"})
    assert message == (
        "tool_choice: Input tag 'sometimes' found using 'type' does not match any of the "
        "expected tags: 'auto', 'any', 'tool', 'none'"
    )


def test_thinking_budget_must_be_below_max_tokens(client: anthropic.Anthropic) -> None:
    """An extended-thinking budget not below max_tokens is refused."""
    message = _refusal(client, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000})
    assert message == "`max_tokens` must be greater than `thinking.budget_tokens`"


def test_bytes_that_are_not_an_image_cannot_be_processed(client: anthropic.Anthropic) -> None:
    """Base64 of bytes that do not decode as an image is refused."""
    data = base64.b64encode(b"definitely not a png").decode()
    assert _refusal(client, messages=_user([_image(data)])) == "Could not process image"


def test_invalid_base64_is_refused(client: anthropic.Anthropic) -> None:
    """Image data that is not base64 is refused at its path."""
    message = _refusal(client, messages=_user([_image("!!!not base64!!!")]))
    assert message == "messages.0.content.0.image.source.base64.data: invalid base64 data"


def test_media_type_must_match_the_image(
    client: anthropic.Anthropic, image_b64: Callable[..., str]
) -> None:
    """A JPEG declared as PNG is refused, naming both types."""
    jpeg = image_b64(8, 8, "JPEG")
    message = _refusal(client, messages=_user([_image(jpeg, "image/png")]))
    assert message.endswith(
        "The image was specified using the image/png media type, but the image appears to be a "
        "image/jpeg image"
    )


def test_unsupported_media_type_is_refused(client: anthropic.Anthropic, png_b64: str) -> None:
    """A media type outside jpeg, png, gif and webp is refused."""
    message = _refusal(client, messages=_user([_image(png_b64, "image/tiff")]))
    assert message.startswith("messages.0.content.0.image.source.base64.media_type: Input should")


def test_image_wider_than_8000_pixels_is_refused(
    client: anthropic.Anthropic, image_b64: Callable[..., str]
) -> None:
    """An image more than 8000 pixels on a side is refused."""
    message = _refusal(client, messages=_user([_image(image_b64(8001, 1))]))
    assert message == (
        "messages.0.content.0.image.source.base64.data: At least one of the image dimensions "
        "exceed max allowed size: 8000 pixels"
    )


def test_image_of_8000_pixels_is_accepted(
    client: anthropic.Anthropic, image_b64: Callable[..., str]
) -> None:
    """An image exactly 8000 pixels wide is served."""
    result = _accepted(client, messages=_user([_image(image_b64(8000, 1))]))
    assert result.content[0].type == "text" and "1 image(s)" in result.content[0].text


def test_many_image_requests_allow_2000_pixels_a_side(
    client: anthropic.Anthropic, png_b64: str, image_b64: Callable[..., str]
) -> None:
    """With more than 20 images, one wider than 2000 pixels is refused."""
    images = [_image(png_b64) for _ in range(20)] + [_image(image_b64(2001, 1))]
    message = _refusal(client, messages=_user(images))
    assert message == (
        "messages.0.content.20.image.source.base64.data: At least one of the image dimensions "
        "exceed max allowed size for many-image requests: 2000 pixels"
    )


def test_more_than_100_images_is_too_much_media(client: anthropic.Anthropic, png_b64: str) -> None:
    """101 images in one request are refused; the count is in the message."""
    message = _refusal(client, messages=_user([_image(png_b64) for _ in range(101)]))
    assert message == "Too much media: 0 document pages + 101 images > 100"


def test_100_images_are_accepted(client: anthropic.Anthropic, png_b64: str) -> None:
    """Exactly 100 images are served."""
    result = _accepted(client, messages=_user([_image(png_b64) for _ in range(100)]))
    assert result.content[0].type == "text" and "100 image(s)" in result.content[0].text


def test_image_over_5_mb_is_refused(
    client: anthropic.Anthropic, image_b64: Callable[..., str]
) -> None:
    """An image whose base64 exceeds 5 MB is refused with both sizes."""
    big = image_b64(1200, 1200, noise=True)
    message = _refusal(client, messages=_user([_image(big)]))
    assert message == (
        f"messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: {len(big)} "
        "bytes > 5242880 bytes"
    )


def test_tool_result_without_tool_use_is_refused(client: anthropic.Anthropic) -> None:
    """A tool_result that answers no tool_use of the previous turn is refused."""
    result = {"type": "tool_result", "tool_use_id": "toolu_ghost", "content": "3"}
    message = _refusal(client, tools=[TOOL], messages=_user([result]))
    assert message.startswith(
        "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_ghost."
    )


def test_tool_use_without_tool_result_is_refused(client: anthropic.Anthropic) -> None:
    """A tool_use not answered in the next message is refused, naming its id."""
    call = {"type": "tool_use", "id": "toolu_1", "name": "lookup_sku", "input": {}}
    messages = [*_user("find it"), {"role": "assistant", "content": [call]}, *_user("well?")]
    message = _refusal(client, tools=[TOOL], messages=messages)
    assert message.startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_1."
    )


def test_prompt_over_the_context_window_is_too_long(client: anthropic.Anthropic) -> None:
    """A prompt over 200k tokens (4 characters each) is refused with the count."""
    message = _refusal(client, messages=_user("abcd" * 200_001))
    assert message == "prompt is too long: 200001 tokens > 200000 maximum"


def test_prompt_plus_max_tokens_over_the_window_is_refused(client: anthropic.Anthropic) -> None:
    """A prompt that fits, but not with room for max_tokens, is refused."""
    message = _refusal(client, max_tokens=2000, messages=_user("abcd" * 199_000))
    assert message.startswith(
        "input length and `max_tokens` exceed context limit: 199000 + 2000 > 200000"
    )


def test_prompt_just_inside_the_window_is_accepted(client: anthropic.Anthropic) -> None:
    """A prompt that leaves room for max_tokens is served."""
    assert _accepted(client, max_tokens=1000, messages=_user("abcd" * 198_999)).content


def test_long_context_beta_widens_the_window(client: anthropic.Anthropic) -> None:
    """With the 1M-context beta header a 250k-token prompt is served."""
    result = _accepted(
        client,
        messages=_user("abcd" * 250_000),
        extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
    )
    assert result.usage.input_tokens >= 250_000
