"""Client authentication: gateway keys that map to a user and a role, and the master key.

Why it exists: the user behind a request decides whose provider keys pay for it, so it must
come from the credential, never from a field any caller can set. Gateway keys are issued per
user by an admin and stored as digests (`IdentitySource`, the gateway database); the master
key is the bootstrap admin, which has no provider keys of its own. An admin may act for a user
explicitly (`x-gateway-user`), and that is logged. One function serves the fast path, the admin
routes and LiteLLM's `general_settings.custom_auth` hook, and failures are always a 401 with an
OpenAI-format body. Known identities are cached until the store's change counter moves, so a
revoked key stops working within the watch's refresh time in every process.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from core.redact import Redactor
from proxy.errors import ForbiddenError, InvalidApiKeyError
from proxy.keys import ChangeWatch

__all__ = [
    "MASTER_KEY_ID",
    "STATE_KEY",
    "Authenticator",
    "Identity",
    "IdentitySource",
    "user_api_key_auth",
]

# Where the ASGI wrapper leaves the Authenticator for LiteLLM's hook (request.state).
STATE_KEY = "gateway_authenticator"
MASTER_KEY_ID = "master"
_ACT_FOR = b"x-gateway-user"
_MAX_CACHED = 50_000

Role = Literal["admin", "user"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request comes from. `user_id` is None for the master key (an admin of no user)."""

    user_id: str | None
    role: Role
    key_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class _Stored(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def key_id(self) -> str: ...


class IdentitySource(Protocol):
    async def identity(self, key_digest: str) -> _Stored | None:
        """The active gateway key with this SHA-256 digest, or None."""
        ...


def _bearer(value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else value.strip()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Accepts the master key and the active gateway keys in `source`.

    The keys it accepts are given to the redactor; a rejected key is never echoed (the error
    says only that it was wrong), and is not remembered either: callers could otherwise grow
    the redactor, or the cache, without bound with made-up keys.
    """

    def __init__(
        self,
        master_key: str,
        *,
        source: IdentitySource | None = None,
        watch: ChangeWatch | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if not master_key:
            raise ValueError("master key must not be empty")
        self._redactor = redactor if redactor is not None else Redactor()
        self._redactor.add(master_key)
        self._key = master_key.encode()
        self._source = source
        self._watch = watch
        self._cache: dict[str, Identity] = {}
        if watch is not None:
            watch.subscribe(self._cache.clear)

    async def authenticate(self, presented: str | None) -> Identity:
        """The identity behind `presented` (a raw header value or a key), or a 401."""
        key = self._presented(presented)
        if hmac.compare_digest(key.encode(), self._key):
            return Identity(user_id=None, role="admin", key_id=MASTER_KEY_ID)
        if self._source is None:
            raise InvalidApiKeyError("invalid API key", status_code=401)
        if self._watch is not None:
            await self._watch.check()
        # Looked up by digest: the digest of a 256-bit random key reveals nothing to time.
        key_digest = _digest(key)
        cached = self._cache.get(key_digest)
        if cached is not None:
            return cached
        stored = await self._source.identity(key_digest)
        if stored is None:
            raise InvalidApiKeyError("invalid or revoked API key", status_code=401)
        identity = Identity(user_id=stored.user_id, role=stored.role, key_id=stored.key_id)
        self._redactor.add(key)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key_digest] = identity
        return identity

    async def authenticate_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> Identity:
        """Authenticate raw ASGI headers (Authorization bearer, or x-api-key)."""
        found: str | None = None
        for name, value in headers:
            if name == b"authorization" or (name == b"x-api-key" and found is None):
                found = value.decode("latin-1")
        return await self.authenticate(found)

    def acting_user(self, identity: Identity, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The user whose keys serve the request: the key's own user, or, for an admin who
        sends `x-gateway-user`, that user (logged). A user naming someone else is refused."""
        named = next((v.decode("latin-1") for k, v in headers if k == _ACT_FOR), None)
        if named is None or named == identity.user_id:
            return identity.user_id
        if not identity.is_admin:
            raise ForbiddenError("only an admin may act for another user (x-gateway-user)")
        structlog.get_logger("proxy.auth").info(
            "admin_acting_for_user", admin=identity.user_id, key_id=identity.key_id, user=named
        )
        return named

    @staticmethod
    def _presented(presented: str | None) -> str:
        key = _bearer(presented) if presented else ""
        if not key:
            raise InvalidApiKeyError(
                "missing API key: send 'Authorization: Bearer <key>'", status_code=401
            )
        return key


async def user_api_key_auth(request: Any, api_key: str) -> Any:
    """LiteLLM `custom_auth` hook: same check as the fast path, 401 on failure.

    The Authenticator comes from request.state (put there by the gateway's ASGI wrapper). Under
    stock `litellm --config litellm_config.yaml` (no wrapper) the master key LiteLLM loaded
    itself is used instead, and without one every request is refused.
    """
    from litellm.proxy._types import (  # noqa: PLC0415 - heavy, needed only inside LiteLLM
        LitellmUserRoles,
        ProxyException,
        UserAPIKeyAuth,
    )

    state: Mapping[str, Any] = request.scope.get("state") or {}
    # Duck-typed: LiteLLM may load this module a second time from its file path, which makes a
    # second, distinct Authenticator class.
    authenticator = state.get(STATE_KEY)
    authenticate = getattr(authenticator, "authenticate", None)
    if authenticate is None:
        from litellm.proxy import proxy_server  # noqa: PLC0415

        if isinstance(proxy_server.master_key, str) and proxy_server.master_key:
            authenticate = Authenticator(proxy_server.master_key).authenticate
    try:
        if not callable(authenticate):
            raise InvalidApiKeyError("gateway authentication is not configured", status_code=401)
        identity = await authenticate(api_key)
    except InvalidApiKeyError as exc:
        raise ProxyException(
            message=exc.message,
            type=exc.error_type,
            param=None,
            code=401,
            openai_code=exc.error_code,
        ) from None
    role = LitellmUserRoles.PROXY_ADMIN if identity.is_admin else LitellmUserRoles.INTERNAL_USER
    return UserAPIKeyAuth(api_key=None, user_id=identity.user_id, user_role=role)
