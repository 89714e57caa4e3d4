"""No-leak errors and the body-size limit, at the ASGI seams: a body over the limit is refused
before it is read whole, the gateway's own failures become a 500 with a correlation id (the
detail logged, never answered), and upstream messages lose LiteLLM's tracebacks."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import structlog
from litellm.litellm_core_utils.exception_mapping_utils import exception_type
from starlette.requests import Request

from core.redact import Redactor
from proxy.asgi import Message, Scope, guarded, limited, read_body
from proxy.auth import Authenticator
from proxy.errors import CORRELATION_HEADER, InvalidRequestError, RequestTooLargeError
from proxy.fastpath import GatewayApp
from proxy.keys import KeyResolver
from proxy.resilience import Resilience
from proxy.routing import RoutingTable
from proxy.settings import ResilienceSettings
from proxy.upstream import translate

SECRET = "sk-internal-secret-value-1234567890"


class Chunks:
    """An ASGI receive handing out `count` chunks of `size` bytes, counting the calls."""

    def __init__(self, count: int, size: int, first: bytes = b"") -> None:
        self.count = count
        self.size = size
        self.first = first
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        more = self.calls < self.count
        body = self.first if self.calls == 1 and self.first else b"x" * self.size
        return {"type": "http.request", "body": body, "more_body": more}


def _scope(headers: list[tuple[bytes, bytes]] = ()) -> Scope:  # type: ignore[assignment]
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}


class Answer:
    """An ASGI send collecting the response."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> Any:
        return orjson.loads(b"".join(m.get("body", b"") for m in self.messages[1:]))


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    """A Content-Length above max_bytes is a 413 without a single receive."""
    receive = Chunks(count=4, size=1024)
    with pytest.raises(RequestTooLargeError) as refused:
        await read_body(receive, scope=_scope([(b"content-length", b"4096")]), max_bytes=2048)
    assert receive.calls == 0
    assert refused.value.status_code == 413
    assert refused.value.to_openai_body()["error"]["code"] == "request_too_large"


async def test_a_streamed_body_is_cut_off_once_past_the_limit() -> None:
    """Without a Content-Length, reading stops at the chunk that passes the limit."""
    receive = Chunks(count=100, size=1000)
    with pytest.raises(RequestTooLargeError):
        await read_body(receive, scope=_scope(), max_bytes=2500)
    assert receive.calls == 3


async def test_a_body_within_the_limit_is_read_whole() -> None:
    """A body of exactly max_bytes is read in full."""
    body = await read_body(Chunks(count=2, size=1000), scope=_scope(), max_bytes=2000)
    assert len(body) == 2000


async def test_a_malformed_content_length_is_a_400() -> None:
    """A Content-Length that is no number is refused as a bad request."""
    with pytest.raises(InvalidRequestError):
        await read_body(Chunks(1, 1), scope=_scope([(b"content-length", b"12x")]), max_bytes=10)


async def test_a_multipart_reader_meets_the_limit_too() -> None:
    """Starlette's form parser over a `limited` receive stops with the 413 error."""
    headers = [(b"content-type", b"multipart/form-data; boundary=b")]
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\n'
    receive = Chunks(count=50, size=1000, first=part)
    with pytest.raises(RequestTooLargeError):
        await Request(_scope(headers), limited(_scope(headers), receive, 4000)).form()
    assert receive.calls == 5


async def _failing_app(scope: Scope, receive: Any, send: Any) -> None:
    raise RuntimeError(f"lookup failed in /srv/gateway/proxy/fastpath.py with key {SECRET}")


async def test_an_internal_failure_is_a_500_with_a_correlation_id_only() -> None:
    """A bug in a route is answered 500 `internal_error` with an id; the log has the detail."""
    answer = Answer()
    with structlog.testing.capture_logs() as logs:
        await guarded(_failing_app, _scope(), Chunks(1, 1), answer, Redactor([SECRET]))
    assert answer.status == 500
    error = answer.body["error"]
    assert error["message"] == "internal error"
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert answer.headers[CORRELATION_HEADER.encode()].decode() == error["correlation_id"]
    (logged,) = [e for e in logs if e["event"] == "internal_error"]
    assert logged["correlation_id"] == error["correlation_id"]
    assert logged["error_type"] == "RuntimeError"
    assert "lookup failed" in logged["error"]
    assert any(":_failing_app:" in frame for frame in logged["frames"])
    everything = f"{answer.messages!r} {logs!r}"
    assert SECRET not in everything
    assert ".py" not in everything and "Traceback" not in everything


async def test_a_failure_after_the_answer_started_sends_nothing_more() -> None:
    """Once a response has started, a failure is logged but no second response is sent."""

    async def half_answered(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("stream broke")

    answer = Answer()
    with structlog.testing.capture_logs() as logs:
        await guarded(half_answered, _scope(), Chunks(1, 1), answer, Redactor())
    assert [m["type"] for m in answer.messages] == ["http.response.start"]
    assert [e["answered"] for e in logs if e["event"] == "internal_error"] == [True]


def _litellm_unmapped_error() -> BaseException:
    """What LiteLLM raises for an exception it cannot map: its message ends in a traceback."""
    try:
        try:
            raise RuntimeError("socket went away")
        except RuntimeError as original:
            exception_type(
                model="claude-sonnet-4",
                original_exception=original,
                custom_llm_provider="anthropic",
            )
    except Exception as raised:
        return raised
    raise AssertionError("LiteLLM mapped nothing")


def test_upstream_messages_lose_litellms_traceback_and_paths() -> None:
    """A LiteLLM error carrying a traceback with file paths is translated without either."""
    exc = _litellm_unmapped_error()
    assert "Traceback (most recent call last)" in str(exc)
    assert ".py" in str(exc)
    error = translate(exc, "anthropic")
    assert "socket went away" in error.message
    assert "Traceback" not in error.message
    assert ".py" not in error.message


def test_a_bare_source_path_in_a_message_is_masked() -> None:
    """A path to a source file inside an upstream message is replaced, the rest kept."""
    error = translate(ValueError("bad input near /opt/site-packages/litellm/main.py:12"), "openai")
    assert "main.py" not in error.message
    assert "bad input near" in error.message


def test_the_param_of_an_error_reaches_the_body() -> None:
    """An error built with `param` carries it in OpenAI's body."""
    error = InvalidRequestError("Invalid 'n': must be >= 1.", param="n")
    assert error.to_openai_body()["error"]["param"] == "n"


async def test_the_fast_path_answers_a_failure_behind_it_with_a_correlation_id() -> None:
    """GatewayApp answers an exception escaping the app behind it with the 500 and its id."""
    routing = RoutingTable.from_config(
        {"model_list": [{"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o"}}]}, {}
    )
    settings = ResilienceSettings(attempts=1)
    app = GatewayApp(
        _failing_app,
        routing=routing,
        authenticator=Authenticator("sk-master"),
        resilience=Resilience(settings, KeyResolver({})),
        request_timeout_s=5,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.get("/v1/models")
    assert response.status_code == 500
    assert response.json()["error"]["correlation_id"] == response.headers[CORRELATION_HEADER]
    assert "fastpath" not in response.text
