"""The Vertex plugin's error translation: every failure of httpx, google-auth and Google's
answers becomes a VertexError with the right kind, so nothing unmapped reaches the gateway."""

from __future__ import annotations

import inspect
import json

import httpx
import pytest
from google.auth import exceptions as auth_exceptions

from plugins.vertex import errors as vertex
from plugins.vertex.errors import error_from_response, vertex_errors


def _subclasses(module: object, root: type[BaseException]) -> list[type[BaseException]]:
    return sorted(
        {c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, root)},
        key=lambda c: c.__name__,
    )


_HTTPX = [
    *_subclasses(httpx, httpx.HTTPError),
    *_subclasses(httpx, httpx.StreamError),
    httpx.InvalidURL,
    httpx.CookieConflict,
]
_AUTH = _subclasses(auth_exceptions, auth_exceptions.GoogleAuthError)


def _instance(cls: type[BaseException]) -> BaseException:
    request = httpx.Request("POST", "http://vertex.test/")
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=request, response=httpx.Response(500, request=request))
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=request)
    if issubclass(cls, httpx.StreamError) and cls is not httpx.StreamError:
        return cls()  # the stream errors carry a fixed message
    return cls("boom")


@pytest.mark.parametrize("cls", [*_HTTPX, *_AUTH, ValueError, KeyError, TypeError], ids=str)
def test_every_upstream_failure_becomes_a_vertex_error(cls: type[BaseException]) -> None:
    """Raised inside vertex_errors(), each httpx, google-auth or decoding failure is mapped."""
    error = _instance(cls)
    with pytest.raises(vertex.VertexError) as caught, vertex_errors():
        raise error
    assert caught.value.__cause__ is error


def test_transport_failures_are_retriable_and_refusals_are_not() -> None:
    """Timeouts and unreachable hosts may pass; a refused service account does not."""
    request = httpx.Request("POST", "http://vertex.test/")
    for failure, retriable in (
        (httpx.ReadTimeout("t", request=request), True),
        (httpx.ConnectError("c", request=request), True),
        (auth_exceptions.RefreshError("invalid_grant"), False),
    ):
        with pytest.raises(vertex.VertexError) as caught, vertex_errors():
            raise failure
        assert caught.value.retriable is retriable


@pytest.mark.parametrize(
    ("status", "google_status", "kind"),
    [
        (429, "RESOURCE_EXHAUSTED", vertex.VertexRateLimited),
        (503, "UNAVAILABLE", vertex.VertexUnavailable),
        (504, "DEADLINE_EXCEEDED", vertex.VertexTimeout),
        (500, "INTERNAL", vertex.VertexServerError),
        (400, "INVALID_ARGUMENT", vertex.VertexBadRequest),
        (401, "UNAUTHENTICATED", vertex.VertexAuthError),
        (403, "PERMISSION_DENIED", vertex.VertexAuthError),
        (404, "NOT_FOUND", vertex.VertexNotFound),
        (502, None, vertex.VertexServerError),
        (418, None, vertex.VertexBadRequest),
    ],
)
def test_google_error_answers_map_by_their_status(
    status: int, google_status: str | None, kind: type[vertex.VertexError]
) -> None:
    """Google's error body (or its HTTP status alone) decides the error's kind and message."""
    body = {"error": {"code": status, "message": "it failed", "status": google_status}}
    error = error_from_response(status, {"retry-after": "2"}, json.dumps(body))
    assert type(error) is kind
    assert "it failed" in error.message
    assert error.retry_after_s == 2


def test_each_class_declares_retriable_and_a_status() -> None:
    """Every error class says whether it is retriable and which HTTP status it answers."""
    classes = _subclasses(vertex, vertex.VertexError)
    assert len(classes) >= 13
    for cls in classes:
        assert isinstance(cls.retriable, bool)
        assert 400 <= cls.status_code < 600
    assert vertex.VertexContentPolicy.content_policy is True
