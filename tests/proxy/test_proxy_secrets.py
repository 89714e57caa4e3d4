"""Provider keys never reach logs or error bodies, even when requests fail at every provider."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
import structlog
from local_gateway import MASTER_KEY, PROVIDER_KEY, EchoingUpstream, local_gateway
from proxy_support import FAKE_KEYS

from core.redact import Redactor
from emulators.testing import EmulatorHandle
from proxy.upstream import translate


def test_failures_log_no_provider_key(
    client: openai.OpenAI,
    emulators: dict[str, EmulatorHandle],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A request failing at both providers logs each attempt, and no log line or body has a key."""
    emulators["anthropic"].set_fault("401")
    emulators["gemini"].set_fault("500")
    with structlog.testing.capture_logs() as logs, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="captioning",
            messages=[{"role": "user", "content": f"leak check {uuid.uuid4().hex}"}],
        )
    printed = capfd.readouterr()
    attempts = [e for e in logs if e["event"] == "provider_attempt_failed"]
    everything = f"{logs!r} {printed.out} {printed.err} {caught.value.response.text}"
    assert [e["provider"] for e in attempts] == ["anthropic", "gemini", "gemini", "gemini"]
    for key in FAKE_KEYS.values():
        assert key not in everything


def test_upstream_messages_echoing_a_key_are_scrubbed() -> None:
    """An upstream error that echoes a registered key reaches us with the key masked."""
    redactor = Redactor(["provider-key-that-is-registered"])
    error = translate(
        ValueError("Incorrect API key provided: provider-key-that-is-registered"),
        "openai",
        redactor,
    )
    assert "provider-key-that-is-registered" not in error.message
    assert "[REDACTED]" in error.message


def test_client_cannot_redirect_the_provider_call(
    client: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """LiteLLM call overrides in the body (base_url, api_base) are refused as OpenAI refuses
    unknown arguments, so no provider is called and no key leaves."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="captioning",
            messages=[{"role": "user", "content": f"redirect {uuid.uuid4().hex}"}],
            extra_body={"base_url": "http://127.0.0.1:9", "api_base": "http://127.0.0.1:9"},
        )
    assert refused.value.param == "base_url"
    assert emulators["anthropic"].stats()["requests"] == 0


async def test_a_provider_echoing_our_key_leaks_it_nowhere(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A provider's 401 repeating the key it was sent reaches neither the client's error body
    nor a log line: the redactor knows the key the gateway resolved."""
    async with EchoingUpstream() as upstream, local_gateway(upstream.url) as url:
        with structlog.testing.capture_logs() as logs:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                response = await client.post(
                    "/v1/chat/completions",
                    json={"model": "local", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {MASTER_KEY}"},
                )
    printed = capfd.readouterr()
    assert upstream.opened == 1
    assert response.status_code == 401
    # The provider did echo it: the failure it reported is in the body, masked.
    assert "Incorrect API key provided: [REDACTED]" in response.text
    everything = f"{response.text} {response.headers} {logs!r} {printed.out} {printed.err}"
    assert PROVIDER_KEY not in everything
    assert MASTER_KEY not in everything
