"""Fault injection, the control API and the rate-limit mode, over raw HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from emulators.http.faults import FaultSpec, FaultSpecError, find_marker, parse_fault
from emulators.testing import EmulatorHandle

AUTH = {"authorization": "Bearer sk-test"}


def _chat(
    handle: EmulatorHandle, text: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    return httpx.post(
        f"{handle.url}/v1/chat/completions", json=body, headers={**AUTH, **(headers or {})}
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("429", FaultSpec(text="429", kind="status", status=429, retry_after=1)),
        (
            "429:retry-after=0",
            FaultSpec(text="429:retry-after=0", kind="status", status=429, retry_after=0),
        ),
        ("503x2", FaultSpec(text="503x2", kind="status", status=503, count=2)),
        ("hang", FaultSpec(text="hang", kind="hang")),
        ("latency=250", FaultSpec(text="latency=250", kind="latency", latency_ms=250)),
        (" 529 ", FaultSpec(text="529", kind="status", status=529)),
    ],
)
def test_grammar_parses_valid_specs(text: str, expected: FaultSpec) -> None:
    """Each documented spec form parses to the expected FaultSpec."""
    assert parse_fault(text) == expected


@pytest.mark.parametrize("text", ["", "418", "503x0", "latency", "boom", "429:retry-after=x"])
def test_grammar_rejects_invalid_specs(text: str) -> None:
    """Specs outside the grammar raise FaultSpecError."""
    with pytest.raises(FaultSpecError):
        parse_fault(text)


def test_marker_is_found_anywhere_in_text() -> None:
    """The first [[fault:...]] marker's spec is extracted from surrounding text."""
    assert find_marker("please [[fault:503x2]] then [[fault:500]]") == "503x2"
    assert find_marker("no marker here") is None


def test_counted_marker_fails_n_times_then_succeeds(openai_em: EmulatorHandle) -> None:
    """[[fault:503x2]] fails attempts 1 and 2 of the same conversation; attempt 3 succeeds."""
    statuses = [_chat(openai_em, "retry me [[fault:503x2]]").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_counted_marker_counts_per_conversation(openai_em: EmulatorHandle) -> None:
    """A different conversation with the same counted marker has its own count."""
    assert _chat(openai_em, "first [[fault:500x1]]").status_code == 500
    assert _chat(openai_em, "first [[fault:500x1]]").status_code == 200
    assert _chat(openai_em, "second [[fault:500x1]]").status_code == 500


def test_header_fault_applies(openai_em: EmulatorHandle) -> None:
    """The x-emulator-fault header injects a fault without a prompt marker."""
    response = _chat(openai_em, "plain", headers={"x-emulator-fault": "502"})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


def test_retry_after_zero_omits_header(openai_em: EmulatorHandle) -> None:
    """429 with retry-after=0 carries no Retry-After header."""
    response = _chat(openai_em, "[[fault:429:retry-after=0]]")
    assert response.status_code == 429
    assert "retry-after" not in response.headers


def test_latency_delays_a_normal_answer(openai_em: EmulatorHandle) -> None:
    """latency=300 answers normally after at least 300 ms."""
    started = time.monotonic()
    response = _chat(openai_em, "slow please [[fault:latency=300]]")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_invalid_marker_is_bad_request(openai_em: EmulatorHandle) -> None:
    """An unparseable fault marker is answered with 400."""
    assert _chat(openai_em, "[[fault:teapot]]").status_code == 400


def test_control_fault_with_count(openai_em: EmulatorHandle) -> None:
    """A control-API fault with count 2 fails the next two requests only."""
    openai_em.set_fault("500", count=2)
    statuses = [_chat(openai_em, f"request {i}").status_code for i in range(3)]
    assert statuses == [500, 500, 200]


def test_control_fault_without_count_lasts_until_cleared(openai_em: EmulatorHandle) -> None:
    """A control-API fault without count applies until DELETE /_emulator/faults."""
    openai_em.set_fault("429")
    assert [_chat(openai_em, "x").status_code for _ in range(3)] == [429, 429, 429]
    openai_em.clear_faults()
    assert _chat(openai_em, "x").status_code == 200


def test_control_rejects_invalid_spec(openai_em: EmulatorHandle) -> None:
    """POST /_emulator/faults with a bad spec answers 400."""
    response = httpx.post(f"{openai_em.url}/_emulator/faults", json={"spec": "nope"})
    assert response.status_code == 400


def test_stats_count_requests_by_path_and_model(openai_em: EmulatorHandle) -> None:
    """Stats report requests, per-path and per-model counts, faults served and timestamps."""
    openai_em.reset()
    before = time.monotonic()
    _chat(openai_em, "one")
    _chat(openai_em, "two [[fault:500]]")
    stats = openai_em.stats()
    assert stats["requests"] == 2
    assert stats["by_path"] == {"/v1/chat/completions": 2}
    assert stats["by_model"] == {"gpt-4o": 2}
    assert stats["faults_served"] == 1
    assert len(stats["timestamps"]) == 2 and stats["timestamps"][0] >= before


def test_reset_clears_stats_and_faults(openai_em: EmulatorHandle) -> None:
    """POST /_emulator/reset empties stats and removes control faults."""
    openai_em.set_fault("500")
    _chat(openai_em, "x")
    openai_em.reset()
    assert openai_em.stats()["requests"] == 0
    assert _chat(openai_em, "x").status_code == 200


def test_rate_limit_mode_rejects_excess_requests(openai_em: EmulatorHandle) -> None:
    """With rate_limit_rps set, a burst beyond the bucket gets 429 with Retry-After."""
    openai_em.configure(rate_limit_rps=2, rate_limit_burst=2)
    responses = [_chat(openai_em, f"burst {i}") for i in range(4)]
    statuses = [r.status_code for r in responses]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1


def test_config_fault_applies_to_every_provider_shape(
    anthropic_em: EmulatorHandle, gemini_em: EmulatorHandle
) -> None:
    """A control fault answers in each provider's own error shape."""
    anthropic_em.set_fault("429", count=1)
    gemini_em.set_fault("429", count=1)
    anthropic = httpx.post(
        f"{anthropic_em.url}/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    gemini = httpx.post(
        f"{gemini_em.url}/v1beta/models/m:generateContent",
        headers={"x-goog-api-key": "k"},
        json={"contents": [{"parts": [{"text": "x"}]}]},
    )
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert anthropic.headers["retry-after"] == gemini.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/v1/chat/completions", AUTH, {"model": "m", "messages": "not-a-list"}),
        (
            "/v1/chat/completions",
            AUTH,
            {"model": "m", "messages": [{"role": "user"}], "response_format": "x"},
        ),
    ],
)
def test_malformed_openai_bodies_are_bad_requests(
    openai_em: EmulatorHandle, path: str, headers: dict[str, str], body: dict[str, Any]
) -> None:
    """Fields of the wrong JSON type get the provider's 400, never a 500."""
    response = httpx.post(f"{openai_em.url}{path}", headers=headers, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_malformed_gemini_body_is_bad_request(gemini_em: EmulatorHandle) -> None:
    """A Gemini part that is not an object gets 400 INVALID_ARGUMENT."""
    response = httpx.post(
        f"{gemini_em.url}/v1beta/models/m:generateContent",
        headers={"x-goog-api-key": "k"},
        json={"contents": [{"parts": ["bare string"]}], "generationConfig": []},
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_malformed_anthropic_body_is_bad_request(anthropic_em: EmulatorHandle) -> None:
    """An Anthropic tool that is not an object gets 400 invalid_request_error."""
    response = httpx.post(
        f"{anthropic_em.url}/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tools": ["bad"],
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
