"""Retries and fallbacks end to end: emulated provider faults, counted at the emulators, and
what the OpenAI SDK client receives."""

from __future__ import annotations

import time
import uuid

import openai
import pytest
import structlog

from emulators.testing import EmulatorHandle

# captioning: anthropic (primary) -> gemini (fallback); visibility: gemini only.


def _messages(text: str = "caption this jacket") -> list[dict[str, object]]:
    return [{"role": "user", "content": f"{text} {uuid.uuid4().hex[:8]}"}]


def _requests(handle: EmulatorHandle) -> int:
    count: int = handle.stats()["requests"]
    return count


@pytest.mark.parametrize(
    ("spec", "primary_attempts"),
    [
        ("429:retry-after=0", 3),
        ("500", 3),
        ("502", 3),
        ("503", 3),
        ("529", 3),
        ("hang", 3),
        ("401", 1),
        ("404", 1),
    ],
)
def test_failing_primary_is_retried_then_the_fallback_serves(
    spec: str,
    primary_attempts: int,
    client: openai.OpenAI,
    emulators: dict[str, EmulatorHandle],
) -> None:
    """Transient faults get 3 attempts, 401/404 one, then the fallback provider answers."""
    emulators["anthropic"].set_fault(spec)
    raw = client.chat.completions.with_raw_response.create(model="captioning", messages=_messages())
    completion = raw.parse()
    assert _requests(emulators["anthropic"]) == primary_attempts
    assert _requests(emulators["gemini"]) == 1
    assert raw.headers["x-gateway-provider"] == "gemini"
    assert raw.headers["x-gateway-fallback"] == "true"
    assert raw.headers["x-gateway-attempts"] == str(primary_attempts + 1)
    assert "[gemini-emulator" in (completion.choices[0].message.content or "")


def test_bad_request_is_returned_without_retry_or_fallback(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A 400 from the primary reaches the client as a 400 after exactly one attempt."""
    emulators["anthropic"].set_fault("400")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="captioning", messages=_messages())
    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["provider"] == "anthropic"
    assert _requests(emulators["anthropic"]) == 1
    assert _requests(emulators["gemini"]) == 0


def test_transient_failures_then_success_are_served_by_the_primary(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """`503x2`: attempts 1 and 2 fail, attempt 3 on the primary succeeds; no fallback."""
    raw = client.chat.completions.with_raw_response.create(
        model="captioning", messages=_messages("[[fault:503x2]] caption")
    )
    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert raw.headers["x-gateway-attempts"] == "3"
    assert raw.headers["x-gateway-fallback"] == "false"
    assert _requests(emulators["anthropic"]) == 3
    assert _requests(emulators["gemini"]) == 0


def test_retry_after_is_honoured(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A 429 with Retry-After: 1 delays the retry by at least a second, then it succeeds."""
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="captioning", messages=_messages("[[fault:429:retry-after=1x1]] caption")
    )
    elapsed = time.monotonic() - started
    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert elapsed >= 1.0
    assert _requests(emulators["anthropic"]) == 2


def test_retry_after_beyond_the_limit_moves_to_the_fallback_at_once(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A Retry-After above max_retry_after_s (3 s here) is not waited for: the fallback serves."""
    emulators["anthropic"].set_fault("429:retry-after=60")
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="captioning", messages=_messages())
    # Waiting the Retry-After out would take 60 s; moving on takes milliseconds.
    assert time.monotonic() - started < 30
    assert raw.headers["x-gateway-provider"] == "gemini"
    assert _requests(emulators["anthropic"]) == 1


def test_all_providers_failing_names_each_provider(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """When primary and fallback both fail, the error lists both with their attempts."""
    emulators["anthropic"].set_fault("500")
    emulators["gemini"].set_fault("502")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="captioning", messages=_messages())
    body = caught.value.body
    assert isinstance(body, dict)
    # Different statuses, all transient: 503 tells the client to come back later.
    assert caught.value.status_code == 503
    assert body["code"] == "all_providers_failed"
    assert "anthropic" in body["message"]
    assert "gemini" in body["message"]
    assert [(a["provider"], a["attempts"], a["status"]) for a in body["attempts"]] == [
        ("anthropic", 3, 500),
        ("gemini", 3, 502),
    ]


def test_rate_limited_task_without_fallback_returns_429(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """visibility has no fallback: three 429s from Gemini reach the client as a 429."""
    emulators["gemini"].set_fault("429:retry-after=0")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="visibility", messages=_messages())
    assert caught.value.status_code == 429
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "rate_limit_error"
    assert _requests(emulators["gemini"]) == 3


def test_unauthorised_provider_without_fallback_returns_401(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """visibility has no fallback: Gemini's 401 reaches the client as a 401 after one attempt."""
    emulators["gemini"].set_fault("401")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="visibility", messages=_messages())
    assert isinstance(caught.value.body, dict)
    assert "gemini" in caught.value.body["message"]
    assert _requests(emulators["gemini"]) == 1


def test_not_found_without_fallback_returns_404(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """visibility has no fallback: Gemini's 404 reaches the client as a 404."""
    emulators["gemini"].set_fault("404")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="visibility", messages=_messages())
    assert _requests(emulators["gemini"]) == 1


def test_timeout_without_fallback_returns_504(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """visibility has no fallback: three attempts that hang past the deadline give a 504."""
    emulators["gemini"].set_fault("hang")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="visibility", messages=_messages())
    assert caught.value.status_code == 504
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "timeout_error"
    assert _requests(emulators["gemini"]) == 3


def test_stream_falls_back_before_the_first_chunk(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A stream whose primary fails is served whole by the fallback, from its first chunk."""
    emulators["anthropic"].set_fault("503")
    with client.chat.completions.with_streaming_response.create(
        model="captioning", messages=_messages(), stream=True
    ) as response:
        assert response.headers["x-gateway-provider"] == "gemini"
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text.startswith("[gemini-emulator")
    assert _requests(emulators["anthropic"]) == 3


def test_served_requests_are_logged_with_provider_and_attempts(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A request served by the fallback logs its task, provider, attempts and fallback flag."""
    emulators["anthropic"].set_fault("401")
    with structlog.testing.capture_logs() as logs:
        client.chat.completions.create(model="captioning", messages=_messages())
    served = [e for e in logs if e["event"] == "chat_completion_served"]
    assert [(e["task"], e["provider"], e["attempts"], e["fallback"]) for e in served] == [
        ("captioning", "gemini", 2, True)
    ]


def test_total_transient_failure_is_marked_retriable(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """Both providers failing with 5xx answers x-gateway-retriable: true."""
    emulators["anthropic"].set_fault("503")
    emulators["gemini"].set_fault("500")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="captioning", messages=_messages())
    assert caught.value.response.headers["x-gateway-retriable"] == "true"


def test_total_failure_with_a_final_cause_is_not_marked_retriable(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """A provider refusing our key makes the whole failure final: x-gateway-retriable: false."""
    emulators["anthropic"].set_fault("401")
    emulators["gemini"].set_fault("503")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="captioning", messages=_messages())
    assert caught.value.response.headers["x-gateway-retriable"] == "false"


def test_deadline_cancels_the_hanging_attempt_and_starts_no_other(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """x-gateway-timeout-ms shorter than one attempt: one call at the primary, none at the
    fallback, and a final 504 deadline_exceeded."""
    emulators["anthropic"].set_fault("hang")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="captioning",
            messages=_messages(),
            extra_headers={"x-gateway-timeout-ms": "300"},
        )
    assert caught.value.status_code == 504
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "deadline_exceeded"
    assert caught.value.response.headers["x-gateway-retriable"] == "false"
    assert _requests(emulators["anthropic"]) == 1
    assert _requests(emulators["gemini"]) == 0


def test_deadline_stops_retries_whose_wait_would_pass_it(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """visibility has no fallback: a 429 asking for 2 s with 1 s left is not retried."""
    emulators["gemini"].set_fault("429:retry-after=2")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="visibility",
            messages=_messages(),
            extra_headers={"x-gateway-timeout-ms": "1000"},
        )
    assert caught.value.status_code == 504
    assert _requests(emulators["gemini"]) == 1


def test_malformed_deadline_is_a_bad_request(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """An unreadable x-gateway-timeout-ms is refused before any provider is called."""
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="captioning",
            messages=_messages(),
            extra_headers={"x-gateway-timeout-ms": "soon"},
        )
    assert _requests(emulators["anthropic"]) == 0
