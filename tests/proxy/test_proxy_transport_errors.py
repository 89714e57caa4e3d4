"""Provider failures through the direct transport: every fault the emulators inject comes out
as the `proxy.errors` class the retry policy expects, with its status, Retry-After and the
provider's message, scrubbed of secrets."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from transport_support import PROVIDERS, deployment, user

from core.redact import Redactor
from emulators.testing import EmulatorHandle
from proxy import errors as ours
from proxy.routing import Deployment
from proxy.transport import Transport
from proxy.upstream import translate_http

KEY = "sk-transport-error-key-0002"

# (spec, class, status) per provider where they differ: Anthropic answers 503 as its own 529.
FAULTS = [
    ("400", ours.BadRequestError, 400),
    ("401", ours.AuthenticationError, 401),
    ("403", ours.PermissionDeniedError, 403),
    ("404", ours.NotFoundError, 404),
    ("429:retry-after=2", ours.RateLimitError, 429),
    ("500", ours.ProviderServerError, 500),
    ("502", ours.ProviderServerError, 502),
    ("503", ours.ServiceUnavailableError, 503),
]


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    """A started transport whose redactor knows KEY, closed after the test."""
    running = Transport(Redactor([KEY]))
    await running.start()
    yield running
    await running.aclose()


def _expected(provider: str, spec: str, kind: type[Any], status: int) -> tuple[type[Any], int]:
    if provider == "anthropic" and spec == "503":
        return ours.ProviderServerError, 529
    return kind, status


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", FAULTS, ids=[f[0] for f in FAULTS])
async def test_error_answers_map_to_their_classes(
    provider: str,
    fault: tuple[str, type[ours.ExternalServiceError], int],
    transport: Transport,
    emulators: dict[str, EmulatorHandle],
) -> None:
    """Each injected HTTP error becomes its class and status, naming the provider."""
    spec, kind, status = fault
    emulators[provider].set_fault(spec)
    expected, expected_status = _expected(provider, spec, kind, status)
    with pytest.raises(ours.ExternalServiceError) as caught:
        await transport.complete(
            deployment(provider, emulators[provider]), KEY, {"messages": user("x")}, timeout_s=5
        )
    assert type(caught.value) is expected
    assert caught.value.status_code == expected_status
    assert caught.value.provider == provider
    assert caught.value.message.startswith(f"{provider}: ")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_retry_after_of_a_429_is_kept(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A 429's Retry-After header becomes the error's retry_after_s."""
    emulators[provider].set_fault("429:retry-after=7")
    with pytest.raises(ours.RateLimitError) as caught:
        await transport.complete(
            deployment(provider, emulators[provider]), KEY, {"messages": user("x")}, timeout_s=5
        )
    assert caught.value.retry_after_s == 7


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failing_stream_fails_before_its_first_chunk(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A stream the provider refuses raises on the first chunk, so it can still be retried."""
    emulators[provider].set_fault("429:retry-after=1")
    params = {"messages": user("x"), "stream": True}
    stream = transport.stream(deployment(provider, emulators[provider]), KEY, params, timeout_s=5)
    with pytest.raises(ours.RateLimitError):
        await stream.__anext__()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_provider_that_does_not_answer_times_out(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A hanging provider becomes ProviderTimeoutError once the request's timeout passes."""
    emulators[provider].set_fault("hang")
    with pytest.raises(ours.ProviderTimeoutError):
        await transport.complete(
            deployment(provider, emulators[provider]), KEY, {"messages": user("x")}, timeout_s=0.3
        )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unreachable_provider_is_unavailable(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A provider whose port refuses connections becomes ServiceUnavailableError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = deployment(provider, emulators[provider])
    params = {**target.params, "api_base": f"http://127.0.0.1:{port}"}
    closed = Deployment(
        group=target.group,
        provider=provider,
        model=target.model,
        key_env=None,
        literal_key=None,
        params=params,
    )
    with pytest.raises(ours.ServiceUnavailableError):
        await transport.complete(closed, KEY, {"messages": user("x")}, timeout_s=5)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_extra_headers_reach_the_provider(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """Caller-supplied headers (the trace context's seam) are sent with the request."""
    with pytest.raises(ours.NotFoundError):
        await transport.complete(
            deployment(provider, emulators[provider]),
            KEY,
            {"messages": user("x")},
            timeout_s=5,
            extra_headers={"x-emulator-fault": "404"},
        )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_configured_extra_headers_reach_the_provider(
    provider: str, transport: Transport, emulators: dict[str, EmulatorHandle]
) -> None:
    """A deployment's `extra_headers` from config are sent with the request."""
    target = deployment(provider, emulators[provider], extra_headers={"x-emulator-fault": "403"})
    assert transport.owns(target, {"messages": user("x")})
    with pytest.raises(ours.PermissionDeniedError):
        await transport.complete(target, KEY, {"messages": user("x")}, timeout_s=5)


def test_http_error_message_is_the_providers_scrubbed_of_secrets() -> None:
    """The provider's message is kept, with every known secret masked."""
    body = b'{"error": {"message": "bad key sk-transport-error-key-0002 for model x"}}'
    error = translate_http(401, {}, body, "openai", Redactor([KEY]))
    assert type(error) is ours.AuthenticationError
    assert "bad key" in error.message
    assert KEY not in error.message


def test_http_content_policy_refusal_is_not_a_plain_bad_request() -> None:
    """A 400 whose code marks a content-policy refusal maps to ContentPolicyError."""
    body = b'{"error": {"message": "refused", "code": "content_policy_violation"}}'
    assert type(translate_http(400, {}, body, "openai")) is ours.ContentPolicyError


def test_http_error_without_json_body_keeps_its_text() -> None:
    """A non-JSON error body (a proxy's HTML page) still yields the class and its text."""
    error = translate_http(502, {"retry-after": "3"}, b"<html>Bad gateway</html>", "gemini")
    assert type(error) is ours.ProviderServerError
    assert "Bad gateway" in error.message
    assert error.retry_after_s == 3


async def test_a_stopped_transport_refuses_to_call(emulators: dict[str, EmulatorHandle]) -> None:
    """After aclose() no connection is opened again."""
    running = Transport()
    await running.start()
    await running.aclose()
    with pytest.raises(RuntimeError):
        await running.complete(
            deployment("openai", emulators["openai"]), KEY, {"messages": user("x")}, timeout_s=5
        )
