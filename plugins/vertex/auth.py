"""Service-account OAuth for Vertex: access tokens minted through google-auth, cached per
credential and refreshed before they expire.

Why it exists: every Vertex call needs a bearer token, and minting one is a signed JWT plus a
round trip to the credential's ``token_uri``. Tokens are kept per credential (the key the
gateway resolved for the attempt: a service-account JSON document, or the path of one, as
GOOGLE_APPLICATION_CREDENTIALS holds), refreshed ``margin_s`` before expiry by one caller at a
time, off the event loop (google-auth's transport is blocking). Neither the credential nor a
token is ever logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.auth.transport.requests import Request
from google.oauth2 import service_account

from plugins.vertex.errors import CREDENTIALS_HINT, VertexCredentialsError, vertex_errors

__all__ = ["SCOPE", "Credential", "TokenCache", "load_credential"]

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# google-auth's own threshold is 3 min 45 s; a little more keeps a long image call's token
# valid until it is sent.
_DEFAULT_MARGIN_S = 300.0


@dataclass(slots=True)
class Credential:
    """One service account's google-auth credentials and the project it names."""

    credentials: service_account.Credentials
    project_id: str | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _info_of(key: str) -> Mapping[str, Any]:
    text = key.strip()
    if not text:
        raise VertexCredentialsError(f"no Vertex credentials: {CREDENTIALS_HINT}")
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text()
        except OSError as exc:
            raise VertexCredentialsError(
                "the file GOOGLE_APPLICATION_CREDENTIALS names cannot be read "
                f"({type(exc).__name__}): {CREDENTIALS_HINT}"
            ) from exc
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise VertexCredentialsError(
            f"the Vertex credentials are not a JSON document: {CREDENTIALS_HINT}"
        ) from exc
    if not isinstance(info, Mapping) or info.get("type") != "service_account":
        raise VertexCredentialsError(
            f"the Vertex credentials are not a service account ('type': 'service_account'): "
            f"{CREDENTIALS_HINT}"
        )
    return info


def load_credential(key: str) -> Credential:
    """google-auth credentials for a service-account JSON document or the path of one."""
    info = _info_of(key)
    try:
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]  # google-auth is untyped here
            dict(info), scopes=[SCOPE]
        )
    except (ValueError, KeyError) as exc:
        # google-auth names the missing field; the message never holds the private key.
        raise VertexCredentialsError(
            f"the service account is incomplete ({type(exc).__name__}): {CREDENTIALS_HINT}"
        ) from exc
    project = info.get("project_id")
    return Credential(credentials, project if isinstance(project, str) and project else None)


def _utcnow() -> datetime.datetime:
    # google-auth keeps `expiry` as naive UTC.
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class TokenCache:
    """Bearer tokens per credential; a token is refreshed ``margin_s`` before it expires."""

    def __init__(
        self,
        *,
        margin_s: float = _DEFAULT_MARGIN_S,
        request_factory: Callable[[], Any] = Request,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self._margin = datetime.timedelta(seconds=margin_s)
        self._request_factory = request_factory
        self._request: Any = None
        self._clock = clock
        # Keyed by a digest, so that the mapping holds no credential text.
        self._entries: dict[str, Credential] = {}
        self.refreshes = 0

    def credential(self, key: str) -> Credential:
        """The cached credential for ``key`` (parsed on first use)."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        entry = self._entries.get(digest)
        if entry is None:
            entry = load_credential(key)
            self._entries[digest] = entry
        return entry

    def forget(self, key: str) -> None:
        """Drop ``key``'s token (Google refused it before its expiry: revoked), so the next
        call mints a new one."""
        entry = self._entries.get(hashlib.sha256(key.encode()).hexdigest())
        if entry is not None:
            entry.credentials.token = None

    def _fresh(self, credentials: service_account.Credentials) -> bool:
        token, expiry = credentials.token, credentials.expiry
        return bool(token) and (expiry is None or expiry - self._margin > self._clock())

    async def token(self, key: str) -> str:
        """A bearer token for ``key`` valid for at least the margin."""
        entry = self.credential(key)
        if self._fresh(entry.credentials):
            return str(entry.credentials.token)
        async with entry.lock:
            # Another caller may have refreshed it while this one waited.
            if not self._fresh(entry.credentials):
                if self._request is None:
                    self._request = self._request_factory()
                with vertex_errors():
                    await asyncio.to_thread(entry.credentials.refresh, self._request)
                self.refreshes += 1
        if not entry.credentials.token:
            raise VertexCredentialsError(f"Google issued no token: {CREDENTIALS_HINT}")
        return str(entry.credentials.token)
