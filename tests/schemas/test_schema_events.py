"""Specifications of the event schemas: round trips, evolution rules and validation."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from schemas import (
    ChatMessage,
    CompletionFailed,
    CompletionRequested,
    CompletionSucceeded,
    DeadLetter,
    ErrorInfo,
    EventCodec,
    ImagePart,
    ImageURL,
    JobProgress,
    RawHeader,
    TextPart,
    ToolCall,
    ToolCallFunction,
    Usage,
)

CODEC = EventCodec()
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _request(**changes: object) -> CompletionRequested:
    base = CompletionRequested(
        event_id="e-1",
        subject="product-42",
        task="captioning",
        occurred_at=WHEN,
        messages=[
            ChatMessage(role="system", content="Describe garments."),
            ChatMessage(
                role="user",
                content=[
                    TextPart(text="Caption this"),
                    ImagePart(image_url=ImageURL(url="data:image/png;base64,AAAA", detail="low")),
                ],
            ),
        ],
        response_format={"type": "json_object"},
        temperature=0.2,
        max_tokens=300,
        tools=[{"type": "function", "function": {"name": "tag", "parameters": {}}}],
    )
    return msgspec.structs.replace(base, **changes)


def test_request_round_trips_through_json() -> None:
    """A request with multi-part vision content decodes to an equal event."""
    event = _request()
    assert CODEC.decode_request(CODEC.encode(event)) == event


def test_request_wire_format_is_openai_shaped() -> None:
    """Messages serialise exactly as OpenAI chat messages, with the tag in `type`."""
    wire = msgspec.json.decode(CODEC.encode(_request()))
    assert wire["type"] == "completion.requested"
    assert wire["schema_version"] == 1
    assert wire["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
    }


def test_results_round_trip_through_one_decoder() -> None:
    """Success and failure results share the results topic and decode to their own types."""
    ok = CompletionSucceeded(
        event_id="r-1",
        request_id="e-1",
        subject="p",
        task="captioning",
        provider="openai",
        model="gpt-4o",
        content="A red dress",
        usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
        latency_ms=12.5,
        occurred_at=WHEN,
        tool_calls=[ToolCall(id="c1", function=ToolCallFunction(name="tag", arguments="{}"))],
    )
    failed = CompletionFailed(
        event_id="r-2",
        request_id="e-2",
        subject="p",
        task="captioning",
        occurred_at=WHEN,
        error=ErrorInfo(type="ProviderBadRequest", message="bad image", retriable=False),
        attempts=3,
    )
    assert [CODEC.decode_result(CODEC.encode(e)) for e in (ok, failed)] == [ok, failed]


def test_status_and_dead_letter_round_trip() -> None:
    """Progress events and dead letters (raw bytes as base64) decode to equal events."""
    progress = JobProgress(
        event_id="s-1",
        request_id="e-1",
        subject="p",
        task="video-summarization",
        stage="keyframes",
        progress=0.5,
        occurred_at=WHEN,
    )
    letter = DeadLetter(
        event_id="d-1",
        original_topic="ai.requests",
        partition=3,
        offset=17,
        key=b"k",
        value=b"\xff not json",
        headers=[RawHeader(key="ce_id", value=b"x")],
        reason="malformed",
        error_chain=[ErrorInfo(type="DecodeError", message="bad")],
        first_seen=WHEN,
        occurred_at=WHEN,
    )
    assert CODEC.decode_status(CODEC.encode(progress)) == progress
    assert CODEC.decode_dead_letter(CODEC.encode(letter)) == letter
    assert msgspec.json.decode(CODEC.encode(letter))["value"] == "/yBub3QganNvbg=="


def test_dead_letters_written_before_the_size_fields_still_decode() -> None:
    """A dead letter without key_size / value_size / digests / truncated decodes with them unset."""
    letter = DeadLetter(
        event_id="d-2",
        original_topic="ai.requests",
        partition=0,
        offset=1,
        value=b"{}",
        reason="invalid",
        first_seen=WHEN,
        occurred_at=WHEN,
        value_size=2,
        value_sha256="44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    )
    wire = msgspec.json.decode(CODEC.encode(letter))
    for field in ("key_size", "key_sha256", "value_size", "value_sha256", "truncated"):
        del wire[field]
    old = CODEC.decode_dead_letter(msgspec.json.encode(wire))
    assert (old.value_size, old.value_sha256, old.truncated) == (None, None, False)
    assert old.value == b"{}"


def test_unknown_fields_are_tolerated() -> None:
    """An event from a newer producer with extra fields still decodes."""
    wire = msgspec.json.decode(CODEC.encode(_request()))
    wire["priority"] = "high"
    wire["messages"][0]["future_field"] = {"x": 1}
    assert CODEC.decode_request(msgspec.json.encode(wire)).event_id == "e-1"


def test_unknown_event_type_is_rejected() -> None:
    """A request whose `type` tag is not a known request type fails validation."""
    wire = msgspec.json.decode(CODEC.encode(_request()))
    wire["type"] = "image.requested.v9"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.type"):
        CODEC.decode_request(msgspec.json.encode(wire))


def test_wrong_field_type_is_rejected() -> None:
    """Validation happens during decoding: a numeric subject is an error naming the field."""
    wire = msgspec.json.decode(CODEC.encode(_request()))
    wire["subject"] = 42
    with pytest.raises(msgspec.ValidationError, match=r"\$\.subject"):
        CODEC.decode_request(msgspec.json.encode(wire))


def test_progress_must_be_between_zero_and_one() -> None:
    """Progress outside 0..1 is invalid."""
    wire = msgspec.json.decode(
        CODEC.encode(
            JobProgress(event_id="s", request_id="e", subject="p", task="t", stage="x", progress=1)
        )
    )
    wire["progress"] = 1.5
    with pytest.raises(msgspec.ValidationError, match="progress"):
        CODEC.decode_status(msgspec.json.encode(wire))


def test_requests_need_at_least_one_message() -> None:
    """An empty message list is rejected."""
    wire = msgspec.json.decode(CODEC.encode(_request()))
    wire["messages"] = []
    with pytest.raises(msgspec.ValidationError, match="messages"):
        CODEC.decode_request(msgspec.json.encode(wire))
