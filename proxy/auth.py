"""Client authentication against the gateway's master key, without any database.

Why it exists: stock LiteLLM needs a database to answer a missing or wrong key properly (it
answers 500/400 without one). The gateway checks the bearer key itself, in constant time, in
one function used by both the fast path and LiteLLM's `general_settings.custom_auth` hook, and
always answers 401 with an OpenAI-format body.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from core.redact import Redactor
from proxy.errors import InvalidApiKeyError

__all__ = ["STATE_KEY", "Authenticator", "user_api_key_auth"]

# Where the ASGI wrapper leaves the Authenticator for LiteLLM's hook (request.state).
STATE_KEY = "gateway_authenticator"


def _bearer(value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else value.strip()


class Authenticator:
    """Accepts exactly the master key.

    The gateway keys it accepts are given to the redactor; a rejected key is never echoed (the
    error says only that it was wrong), and is not remembered either: callers could otherwise
    grow the redactor without bound with made-up keys.
    """

    def __init__(self, master_key: str, *, redactor: Redactor | None = None) -> None:
        if not master_key:
            raise ValueError("master key must not be empty")
        if redactor is not None:
            redactor.add(master_key)
        self._key = master_key.encode()

    def check(self, presented: str | None) -> None:
        """Raise InvalidApiKeyError unless `presented` (raw header value or key) matches."""
        if not presented:
            raise InvalidApiKeyError(
                "missing API key: send 'Authorization: Bearer <key>'", status_code=401
            )
        if not hmac.compare_digest(_bearer(presented).encode(), self._key):
            raise InvalidApiKeyError("invalid API key", status_code=401)

    def check_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Authenticate raw ASGI headers (Authorization bearer, or x-api-key)."""
        found: str | None = None
        for name, value in headers:
            if name == b"authorization" or (name == b"x-api-key" and found is None):
                found = value.decode("latin-1")
        self.check(found)


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
    check = getattr(state.get(STATE_KEY), "check", None)
    if check is None:
        from litellm.proxy import proxy_server  # noqa: PLC0415

        if isinstance(proxy_server.master_key, str) and proxy_server.master_key:
            check = Authenticator(proxy_server.master_key).check
    try:
        if not callable(check):
            raise InvalidApiKeyError("gateway authentication is not configured", status_code=401)
        check(api_key)
    except InvalidApiKeyError as exc:
        raise ProxyException(
            message=exc.message,
            type=exc.error_type,
            param=None,
            code=401,
            openai_code=exc.error_code,
        ) from None
    return UserAPIKeyAuth(api_key=None, user_role=LitellmUserRoles.PROXY_ADMIN)
