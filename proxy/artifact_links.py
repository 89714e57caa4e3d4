"""Signed artifact links served over HTTP, and the sweep that collects artifacts past retention.

Why in the proxy: results hand clients a URL (`artifacts.links.link_for`) that any HTTP client
can open without a gateway key, so the proxy process, which already listens where clients
reach the gateway, answers `GET` / `HEAD` `{LINK_PATH}{id}?expires=...&signature=...` from
the store of `gateway_settings.artifacts`, ahead of authentication. The signature is the only
credential: it grants one artifact until one moment (`artifacts.signing`).

Answers, in the order the checks run (OpenAI's error shape, as every gateway error):

    links off (no signing key)    404 artifact_not_found   nothing is read
    id not 64 lowercase hex       400 invalid_request      param "artifact_id"
    signature malformed / foreign 403 invalid_signature
    signature past its expiry     403 link_expired         "link expired at <unix time>"
    no such artifact              404 artifact_not_found
    store down                    503 artifact_store_unavailable, Retry-After
    found                         200 the bytes, the stored Content-Type, Content-Length,
                                  cacheable (private) until the link expires

Why 403 rather than 410 for an expired link: the artifact may well still exist (410 would
say it is gone for good); what is refused is this link, and a fresh one would work. The body
says "expired" so a client can tell it from a forged link. The signature is checked before the
expiry, so editing `expires` only ever yields "invalid".

The sweep runs in the process that sweeps media jobs (exactly one of `gateway up --workers
N`): every `gc_interval_s` it removes the artifacts last stored more than `retention_s` ago
and logs how many.
"""

from __future__ import annotations

import contextlib
import mimetypes
import re
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from urllib.parse import parse_qs

import structlog

from artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactRef,
    ArtifactStore,
    InvalidArtifactId,
    SignatureExpired,
    SignatureInvalid,
    verify,
)
from artifacts.links import LINK_PATH
from artifacts.settings import ArtifactSettings, open_store
from core.redact import Redactor
from proxy.asgi import ASGIApp, Receive, Scope, Send, guarded, header, send_error
from proxy.errors import (
    ArtifactMissingError,
    ArtifactStoreUnavailableError,
    ExternalServiceError,
    InvalidRequestError,
    LinkExpiredError,
    LinkInvalidError,
)
from proxy.lifecycle import Periodic, with_lifespan

__all__ = ["ArtifactLinks"]

_METHODS = frozenset({"GET", "HEAD"})
_ID = re.compile(r"[0-9a-f]{64}")
# Seconds a client waits before asking again when the store is down.
_STORE_RETRY_AFTER_S = 5.0


class ArtifactLinks:
    """ASGI wrapper: the signed artifact links ahead of `inner`, and (with `sweep`) the
    garbage collection of the store, started and stopped with the server's lifespan."""

    def __init__(
        self,
        inner: ASGIApp,
        settings: ArtifactSettings,
        *,
        redactor: Redactor,
        sweep: bool = True,
        store: ArtifactStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._settings = settings
        self._redactor = redactor
        self._key = None if settings.signing_key is None else settings.signing_key.encode()
        self._store = store if store is not None else open_store(settings)
        self._sweep_on = sweep
        self._clock = clock
        self._sweeper = Periodic(self._sweep, settings.gc_interval_s)
        self._log = structlog.get_logger("proxy.artifacts")

    async def start(self) -> None:
        if self._sweep_on:
            self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._inner(scope, with_lifespan(receive, self.start, self.stop), send)
            return
        path = scope.get("path") or ""
        if scope["type"] != "http" or not path.startswith(LINK_PATH):
            await self._inner(scope, receive, send)
            return
        if scope["method"] not in _METHODS:
            await self._inner(scope, receive, send)
            return
        await guarded(self._serve, scope, receive, send, self._redactor)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._answer(scope, send)
        except ExternalServiceError as error:
            await send_error(send, error, self._redactor)

    async def _answer(self, scope: Scope, send: Send) -> None:
        if self._key is None:
            raise ArtifactMissingError("artifact links are not enabled on this gateway")
        artifact_id = scope["path"][len(LINK_PATH) :]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        expires, signature = _single(query, "expires"), _single(query, "signature")
        now = self._clock()
        with _translated(artifact_id):
            # The id first: a malformed one names no artifact a signature could be for.
            verify(_checked_id(artifact_id), expires, signature, self._key, now)
            ref = await self._store.ref(artifact_id)
        headers = _headers(ref, expires=int(expires), now=now)
        if header(scope, b"if-none-match") == _etag(ref):
            # The client holds these bytes already: nothing is read from the store.
            await send({"type": "http.response.start", "status": 304, "headers": headers[2:]})
            await send({"type": "http.response.body", "body": b""})
            return
        data = b""
        if scope["method"] == "GET":
            with _translated(artifact_id):
                data = await self._store.get(artifact_id)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _sweep(self) -> None:
        """One collection (the sweeper's round, every `gc_interval_s`); a failed one is logged
        and the next one tries again (not a retry of the same call: the next one is due anyway)."""
        retention_s = self._settings.retention_s
        try:
            removed = await self._store.collect_garbage(retention_s)
        except ArtifactError as exc:
            self._log.warning("artifact_collection_failed", error=self._redactor.scrub(str(exc)))
        else:
            self._log.info("artifacts_collected", removed=removed, retention_s=retention_s)


@contextlib.contextmanager
def _translated(artifact_id: str) -> Iterator[None]:
    """The one place the artifacts package's errors become the route's answers."""
    try:
        yield
    except InvalidArtifactId:
        raise InvalidRequestError(
            "the artifact id must be 64 lowercase hex digits", param="artifact_id"
        ) from None
    except SignatureExpired as exc:
        raise LinkExpiredError(f"the artifact link has expired ({exc})") from None
    except SignatureInvalid:
        raise LinkInvalidError("the artifact link's signature is not valid") from None
    except ArtifactNotFound:
        raise ArtifactMissingError(f"artifact {artifact_id} not found") from None
    except ArtifactError as exc:
        if not exc.retriable:
            # A store that refuses the gateway is its configuration's fault: a 500 whose
            # detail is logged (`guarded`), not the caller's business.
            raise
        raise ArtifactStoreUnavailableError(
            "the artifact store is unavailable", retry_after_s=_STORE_RETRY_AFTER_S
        ) from exc


def _single(query: dict[str, list[str]], name: str) -> str:
    # A repeated parameter is as malformed as a missing one: which value was signed?
    values = query.get(name, [])
    return values[0] if len(values) == 1 else ""


def _checked_id(artifact_id: str) -> str:
    if _ID.fullmatch(artifact_id) is None:
        raise InvalidArtifactId(artifact_id)
    return artifact_id


def _etag(ref: ArtifactRef) -> str:
    # The id is the bytes' digest: a strong validator by construction.
    return f'"{ref.id}"'


def _headers(ref: ArtifactRef, *, expires: int, now: float) -> list[tuple[bytes, bytes]]:
    """Content-Type and Content-Length first (a 304 leaves them out), then the rest."""
    max_age = max(0, int(expires - now))
    extension = mimetypes.guess_extension(ref.content_type.partition(";")[0].strip()) or ""
    return [
        (b"content-type", ref.content_type.encode("latin-1", "replace")),
        (b"content-length", str(ref.size).encode()),
        # Private: the URL is a credential, so shared caches must not serve it to others; the
        # bytes behind an id never change, so a client may keep them until the link expires.
        (b"cache-control", f"private, max-age={max_age}, immutable".encode()),
        (b"expires", formatdate(expires, usegmt=True).encode()),
        (b"etag", _etag(ref).encode()),
        (b"content-disposition", f'inline; filename="{ref.id}{extension}"'.encode()),
        # The stored type is whatever a provider returned: an HTML or SVG artifact must not run
        # script on the gateway's origin, nor a browser guess a type it was not given.
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"default-src 'none'; sandbox"),
    ]
