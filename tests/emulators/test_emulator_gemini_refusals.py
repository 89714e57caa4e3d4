"""The Gemini emulator refuses what generateContent refuses, seen through google-genai."""

from __future__ import annotations

from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from emulators.testing import EmulatorHandle

MODEL = "gemini-2.5-flash"


@pytest.fixture
def client(gemini_em: EmulatorHandle) -> genai.Client:
    """A Google AI (API key) client pointed at the emulator."""
    return genai.Client(api_key="AIza-test", http_options={"base_url": gemini_em.url})


def _refusal(client: genai.Client, contents: Any = "hi", **config: Any) -> str:
    """The message of the INVALID_ARGUMENT ClientError that generate_content raises."""
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(
            model=MODEL, contents=contents, config=types.GenerateContentConfig(**config)
        )
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    return str(caught.value.message)


def _accepted(
    client: genai.Client, contents: Any = "hi", **config: Any
) -> types.GenerateContentResponse:
    return client.models.generate_content(
        model=MODEL, contents=contents, config=types.GenerateContentConfig(**config)
    )


def _call(name: str = "get_forecast") -> types.Part:
    return types.Part.from_function_call(name=name, args={"city": "Milan"})


def _answer(name: str = "get_forecast") -> types.Part:
    return types.Part.from_function_response(name=name, response={"sky": "clear"})


def test_temperature_above_2_is_refused(client: genai.Client) -> None:
    """temperature 2.5 is refused with the supported range."""
    assert _refusal(client, temperature=2.5) == (
        "Unable to submit request because it has a temperature value of 2.5 but the supported "
        "range is from 0 (inclusive) to 2.0001 (exclusive). Update the value and try again."
    )


def test_temperature_of_2_is_accepted(client: genai.Client) -> None:
    """temperature 2, the upper bound, is served."""
    assert _accepted(client, temperature=2.0).text


def test_top_p_above_1_is_refused(client: genai.Client) -> None:
    """top_p above 1 is refused, naming topP."""
    assert "has a topP value of 1.5" in _refusal(client, top_p=1.5)


def test_candidate_count_above_8_is_refused(client: genai.Client) -> None:
    """candidateCount 9 is refused; 8 is the most."""
    assert _refusal(client, candidate_count=9) == (
        "Unable to submit request because candidateCount must be between 1 and 8 but the "
        "entered value was 9."
    )


def test_candidate_count_of_8_is_accepted(client: genai.Client) -> None:
    """candidateCount 8 is served with eight candidates."""
    result = _accepted(client, candidate_count=8)
    assert [c.index for c in result.candidates or []] == list(range(8))


def test_max_output_tokens_above_the_model_cap_is_refused(client: genai.Client) -> None:
    """maxOutputTokens above gemini-2.5-flash's 65536 is refused."""
    assert "maxOutputTokens value of 65537" in _refusal(client, max_output_tokens=65537)


def test_unknown_role_is_refused(client: genai.Client) -> None:
    """A role other than user or model is refused."""
    contents = [types.Content(role="assistant", parts=[types.Part.from_text(text="hi")])]
    assert _refusal(client, contents) == "Please use a valid role: user, model."


def test_unknown_response_mime_type_is_refused(client: genai.Client) -> None:
    """A responseMimeType outside the supported five is refused."""
    message = _refusal(client, response_mime_type="text/html")
    assert "allowed mimetypes are `text/plain`, `application/json`" in message


def test_unknown_response_modality_is_refused(client: genai.Client) -> None:
    """A response modality outside the Modality enum is refused at its path."""
    message = _refusal(client, response_modalities=["SMELL"])
    assert message.startswith("Invalid value at 'generation_config.response_modalities[0]'")


def test_unknown_function_calling_mode_is_refused(client: genai.Client) -> None:
    """A functionCallingConfig mode outside the Mode enum is refused at its path."""
    config = {"function_calling_config": {"mode": "SOMETIMES"}}
    # The SDK warns about the value, then sends it as given.
    with pytest.warns(UserWarning, match="not a valid FunctionCallingConfigMode"):
        message = _refusal(client, tool_config=config)
    assert message.startswith("Invalid value at 'tool_config.function_calling_config.mode'")
    assert message.endswith('"SOMETIMES"')


def test_part_without_data_is_refused(client: genai.Client) -> None:
    """A part that carries no text, data or call is refused as an empty oneof."""
    contents = [types.Content(role="user", parts=[types.Part()])]
    assert _refusal(client, contents) == (
        "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must "
        "have one initialized field\n"
    )


def test_image_that_does_not_decode_is_refused(client: genai.Client) -> None:
    """Inline image bytes that are not an image are refused."""
    part = types.Part.from_bytes(data=b"definitely not a png", mime_type="image/png")
    assert _refusal(client, [part, "what is it?"]).startswith("Unable to process input image.")


def test_too_many_images_are_refused(client: genai.Client, png_bytes: bytes) -> None:
    """3601 inline images in one request are refused; 3600 is the most."""
    part = types.Part.from_bytes(data=png_bytes, mime_type="image/png")
    assert "3601 images" in _refusal(client, [part] * 3601)


def test_request_over_20_mb_is_refused(client: genai.Client) -> None:
    """A request body over 20 MB (inline data included) is refused."""
    part = types.Part.from_bytes(data=bytes(16 * 1024 * 1024), mime_type="application/pdf")
    message = _refusal(client, [part, "summarise"])
    assert message == "Request payload size exceeds the limit: 20971520 bytes."


def test_function_response_without_function_call_is_refused(client: genai.Client) -> None:
    """A functionResponse turn that follows no functionCall turn is refused."""
    contents = [types.Content(role="user", parts=[_answer()])]
    assert _refusal(client, contents) == (
        "Please ensure that function response turn comes immediately after a function call turn."
    )


def test_function_responses_must_match_the_calls(client: genai.Client) -> None:
    """Two functionCall parts answered by one functionResponse are refused."""
    contents = [
        types.Content(role="user", parts=[types.Part.from_text(text="Milan and Rome?")]),
        types.Content(role="model", parts=[_call(), _call()]),
        types.Content(role="user", parts=[_answer()]),
    ]
    assert _refusal(client, contents).startswith(
        "Please ensure that the number of function response parts is equal to the number of "
        "function call parts"
    )


def test_function_call_turn_must_follow_a_user_turn(client: genai.Client) -> None:
    """A model functionCall turn straight after another model turn is refused."""
    contents = [
        types.Content(role="user", parts=[types.Part.from_text(text="Weather?")]),
        types.Content(role="model", parts=[types.Part.from_text(text="Let me check.")]),
        types.Content(role="model", parts=[_call()]),
    ]
    assert _refusal(client, contents).startswith(
        "Please ensure that function call turn comes immediately after a user turn"
    )


def test_prompt_over_the_context_window_is_refused(client: genai.Client) -> None:
    """A prompt over 1,048,576 tokens is refused with both counts."""
    assert _refusal(client, "abcd" * 1_048_577) == (
        "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
    )


def test_prompt_inside_the_context_window_is_accepted(client: genai.Client) -> None:
    """A prompt of exactly the window is served."""
    result = _accepted(client, "abcd" * 1_048_576)
    assert result.usage_metadata is not None
    assert result.usage_metadata.prompt_token_count == 1_048_576
