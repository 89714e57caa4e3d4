"""The OpenAI emulator refuses what Chat Completions refuses, seen through the openai SDK."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from emulators.openai.rules import FIELDS
from emulators.testing import EmulatorHandle

MODEL = "gpt-4o"
TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
CALL: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": "{}"},
}


@pytest.fixture
def client(openai_em: EmulatorHandle) -> Iterator[openai.OpenAI]:
    """A sync SDK client without retries, so each call is one attempt."""
    with openai.OpenAI(base_url=f"{openai_em.url}/v1", api_key="sk-test", max_retries=0) as c:
        yield c


def _user(content: Any) -> list[Any]:
    return [{"role": "user", "content": content}]


def _refusal(client: openai.OpenAI, **kwargs: Any) -> openai.BadRequestError:
    """The BadRequestError that ``chat.completions.create(**kwargs)`` raises."""
    params: dict[str, Any] = {"model": MODEL, "messages": _user("hi")}
    params.update(kwargs)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**params)
    error = caught.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    return error


def _message(error: openai.BadRequestError) -> str:
    assert isinstance(error.body, dict)
    return str(error.body["message"])


def _accepted(client: openai.OpenAI, **kwargs: Any) -> ChatCompletion:
    params: dict[str, Any] = {"model": MODEL, "messages": _user("hi")}
    params.update(kwargs)
    result: ChatCompletion = client.chat.completions.create(**params)
    return result


def test_every_sdk_parameter_is_a_known_argument() -> None:
    """Each parameter the openai SDK can send is one the emulator recognises."""
    assert set(CompletionCreateParamsBase.__annotations__) | {"stream"} <= FIELDS


def test_temperature_above_2_is_refused(client: openai.OpenAI) -> None:
    """temperature 3 is refused with OpenAI's message, param and code."""
    error = _refusal(client, temperature=3)
    assert _message(error) == (
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 "
        "instead."
    )
    assert error.param == "temperature" and error.code == "decimal_above_max_value"


def test_temperature_of_2_is_accepted(client: openai.OpenAI) -> None:
    """temperature 2, the upper bound, is served."""
    assert _accepted(client, temperature=2).choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("top_p", 1.5, "decimal_above_max_value"),
        ("presence_penalty", -2.5, "decimal_below_min_value"),
        ("n", 0, "integer_below_min_value"),
        ("n", 129, "integer_above_max_value"),
    ],
)
def test_parameters_out_of_range_name_themselves(
    client: openai.OpenAI, field: str, value: float, code: str
) -> None:
    """Each bounded parameter out of range is refused with itself as param."""
    error = _refusal(client, **{field: value})
    assert error.param == field and error.code == code
    assert _message(error).startswith(f"Invalid '{field}': ")


def test_n_choices_are_each_answered_and_billed(client: openai.OpenAI) -> None:
    """n=3 gives three choices, and three times the completion tokens of one."""
    one = _accepted(client)
    three = _accepted(client, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert one.usage is not None and three.usage is not None
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens


def test_streamed_n_choices_each_assemble(client: openai.OpenAI) -> None:
    """A stream with n=2 carries both choices, each assembling to the same text."""
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=_user("hi"), n=2, stream=True)
    )
    texts = ["", ""]
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts[0] and texts[0] == texts[1]


def test_wrong_type_is_refused(client: openai.OpenAI) -> None:
    """A string temperature is refused as the wrong type."""
    error = _refusal(client, temperature="hot")
    assert _message(error) == (
        "Invalid type for 'temperature': expected a decimal, but got a string instead."
    )
    assert error.code == "invalid_type"


def test_max_tokens_above_the_model_cap_is_refused(client: openai.OpenAI) -> None:
    """max_tokens above gpt-4o's 16384 completion tokens is refused."""
    error = _refusal(client, max_tokens=16385)
    assert _message(error) == (
        "max_tokens is too large: 16385. This model supports at most 16384 completion tokens, "
        "whereas you provided 16385."
    )
    assert error.param == "max_tokens"


def test_unknown_argument_is_unrecognized(client: openai.OpenAI) -> None:
    """An argument the API does not define is refused, naming it."""
    error = _refusal(client, extra_body={"foo": 1})
    assert _message(error) == "Unrecognized request argument supplied: foo"


def test_unknown_role_is_refused(client: openai.OpenAI) -> None:
    """A role outside the six the API knows is refused at its path."""
    error = _refusal(client, messages=[{"role": "robot", "content": "hi"}])
    assert _message(error) == (
        "Invalid value: 'robot'. Supported values are: 'system', 'assistant', 'user', "
        "'function', 'tool', and 'developer'."
    )
    assert error.param == "messages[0].role" and error.code == "invalid_value"


def test_unknown_content_part_type_is_refused(client: openai.OpenAI) -> None:
    """A content part of an unknown type is refused at its path."""
    error = _refusal(client, messages=_user([{"type": "video", "video": "x"}]))
    assert error.param == "messages[0].content[0].type" and error.code == "invalid_value"


def test_unknown_tool_choice_is_refused(client: openai.OpenAI) -> None:
    """A tool_choice string other than none, auto or required is refused."""
    error = _refusal(client, tools=[TOOL], tool_choice="sometimes")
    assert _message(error) == (
        "Invalid value: 'sometimes'. Supported values are: 'none', 'auto', and 'required'."
    )
    assert error.param == "tool_choice"


def test_tool_choice_without_tools_is_refused(client: openai.OpenAI) -> None:
    """tool_choice with no tools declared is refused."""
    error = _refusal(client, tool_choice="required")
    assert error.param == "tool_choice"
    assert "'tool_choice' is only allowed when 'tools' are specified" in _message(error)


def test_unknown_response_format_is_refused(client: openai.OpenAI) -> None:
    """A response_format type other than text, json_object or json_schema is refused."""
    error = _refusal(client, response_format={"type": "yaml"})
    assert error.param == "response_format.type" and error.code == "invalid_value"


def test_image_that_does_not_decode_is_unsupported(client: openai.OpenAI) -> None:
    """A data URL whose bytes are not an image is refused as an unsupported image."""
    data = base64.b64encode(b"definitely not a png").decode()
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
    error = _refusal(client, messages=_user([part]))
    assert _message(error).startswith("You uploaded an unsupported image.")
    assert error.code == "invalid_image_format"


def test_too_many_images_are_refused(client: openai.OpenAI, png_b64: str) -> None:
    """501 images in one request are refused; 500 is the limit."""
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png_b64}"}}
    error = _refusal(client, messages=_user([part] * 501))
    assert _message(error) == "Too many images in request. Max is 500."


def test_500_images_are_accepted(client: openai.OpenAI, png_b64: str) -> None:
    """Exactly 500 images are served (by gpt-4.1, whose window holds their tokens)."""
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png_b64}"}}
    result = _accepted(client, model="gpt-4.1", messages=_user([part] * 500))
    assert "500 image(s)" in (result.choices[0].message.content or "")


def test_tool_message_without_tool_calls_is_refused(client: openai.OpenAI) -> None:
    """A tool message that answers no assistant tool_calls is refused."""
    messages = [*_user("hi"), {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    error = _refusal(client, tools=[TOOL], messages=messages)
    assert _message(error) == (
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
        "message with 'tool_calls'."
    )
    assert error.param == "messages.[1].role"


def test_tool_message_with_an_unknown_id_is_refused(client: openai.OpenAI) -> None:
    """A tool message whose tool_call_id the assistant never issued is refused."""
    messages = [
        *_user("hi"),
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny"},
    ]
    error = _refusal(client, tools=[TOOL], messages=messages)
    assert error.param == "messages.[2].tool_call_id"
    assert "'call_2' not found in 'tool_calls' of previous message" in _message(error)


def test_unanswered_tool_call_is_refused(client: openai.OpenAI) -> None:
    """An assistant tool call followed by anything but its tool message is refused."""
    messages = [
        *_user("hi"),
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        *_user("and?"),
    ]
    error = _refusal(client, tools=[TOOL], messages=messages)
    assert _message(error).endswith("did not have response messages: call_1")


def test_prompt_over_the_context_window_is_refused(client: openai.OpenAI) -> None:
    """A prompt over gpt-4o's 128k tokens is refused as context_length_exceeded."""
    error = _refusal(client, messages=_user("abcd" * 128_001))
    assert _message(error) == (
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 128001 tokens. Please reduce the length of the messages."
    )
    assert error.code == "context_length_exceeded" and error.param == "messages"


def test_prompt_plus_completion_over_the_window_is_refused(client: openai.OpenAI) -> None:
    """A prompt that fits, but not with the completion it asks for, is refused."""
    error = _refusal(client, max_tokens=2000, messages=_user("abcd" * 127_000))
    assert "you requested 129000 tokens (127000 in the messages, 2000 in the completion)" in (
        _message(error)
    )


def test_prompt_inside_the_window_is_accepted(client: openai.OpenAI) -> None:
    """A prompt with room for its completion is served."""
    result = _accepted(client, max_tokens=1000, messages=_user("abcd" * 126_999))
    assert result.usage is not None and result.usage.prompt_tokens == 126_999
