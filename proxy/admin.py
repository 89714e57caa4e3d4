"""The key and identity routes under /gateway/v1: provider keys, users and gateway keys.

Why it exists: users manage their own provider keys (set, delete, list a masked tail,
validate), admins the system keys, the users and their gateway keys, all over HTTP (the
`gateway keys` / `gateway users` commands are clients of these routes). The caller is always
the identity behind the gateway key (`proxy.auth`); an admin acts for a user only by naming it
in `x-gateway-user`, which is logged. Every refusal is an OpenAI-format error with a precise
status and code, decided before anything is written, so a refused request changes nothing.
A stored key never comes back whole: responses carry the provider and the last four
characters; only a newly issued gateway key is returned, once, to the admin who asked.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.redact import Redactor
from database import (
    DatabaseError,
    DuplicateRecordError,
    EncryptionKeyError,
    KeyRecords,
    StoredKeyInfo,
    UnknownRecordError,
)
from proxy.auth import Authenticator, Identity
from proxy.errors import ExternalServiceError, ForbiddenError
from proxy.keys import KEY_PROVIDERS, ChangeWatch
from proxy.validation import validate_key

__all__ = ["PREFIX", "AdminRoutes", "KeyAdmin"]

PREFIX = "/gateway/v1"
MAX_KEY_CHARS = 16_384  # a Vertex service-account JSON is ~2.4 KB; real API keys under 200 B
_MAX_BODY = 64 * 1024
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_ROLES = ("admin", "user")

# How the database's refusals reach a client; any other database error is a 503.
_STORE_ERRORS: dict[type[DatabaseError], tuple[int, str, str]] = {
    UnknownRecordError: (404, "not_found_error", "not_found"),
    DuplicateRecordError: (409, "invalid_request_error", "already_exists"),
    EncryptionKeyError: (503, "api_error", "encryption_unavailable"),
}

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
Handler = Callable[[Request, Identity], Awaitable[Response]]


class _Refused(Exception):
    """A request refused before any change; becomes an OpenAI-format error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _masked(info: StoredKeyInfo) -> dict[str, Any]:
    return {"provider": info.provider, "key": f"****{info.tail}", "updated_at": info.updated_at}


def _provider(request: Request) -> str:
    provider = str(request.path_params["provider"])
    if provider not in KEY_PROVIDERS:
        raise _Refused(
            404, "unknown_provider", f"unknown provider; known: {', '.join(KEY_PROVIDERS)}"
        )
    return provider


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise _Refused(413, "body_too_large", f"request body over {_MAX_BODY} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Refused(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _Refused(400, "invalid_json", "request body must be a JSON object")
    return data


def _key_field(data: dict[str, Any], provider: str) -> str:
    key = data.get("key")
    if not isinstance(key, str) or not key.strip():
        raise _Refused(400, "empty_key", "'key' must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise _Refused(400, "key_too_long", f"'key' is over {MAX_KEY_CHARS} characters")
    key = key.strip()
    # Every provider but Vertex (a service-account JSON) takes its key in an HTTP header,
    # which carries printable ASCII only: any other key could never be sent.
    if provider != "vertex" and not (key.isascii() and key.isprintable()):
        raise _Refused(400, "invalid_key", f"a {provider} key is printable ASCII characters")
    return key


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise _Refused(400, "invalid_field", f"'{name}' must be true or false")
    return value


def _user_id(value: object) -> str:
    if not isinstance(value, str) or not _USER_ID.fullmatch(value):
        raise _Refused(
            400, "invalid_user_id", "a user id is 1-128 letters, digits or . _ @ -, not first"
        )
    return value


class KeyAdmin:
    """The handlers, over the gateway database and the process's authenticator."""

    def __init__(
        self,
        records: KeyRecords,
        authenticator: Authenticator,
        watch: ChangeWatch,
        *,
        bases: dict[str, str],
        redactor: Redactor,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._records = records
        self._auth = authenticator
        self._watch = watch
        self._bases = bases
        self._redactor = redactor
        self._http = http if http is not None else httpx.AsyncClient(timeout=10.0)
        self._log = structlog.get_logger("proxy.admin")
        self.app = Starlette(routes=self._routes())

    async def aclose(self) -> None:
        await self._http.aclose()

    def _routes(self) -> list[Route]:
        def route(path: str, handler: Handler, method: str, *, admin: bool = False) -> Route:
            return Route(PREFIX + path, self._guard(handler, admin=admin), methods=[method])

        return [
            route("/me", self._me, "GET"),
            route("/keys", self._list_own, "GET"),
            route("/keys/{provider}", self._set_own, "PUT"),
            route("/keys/{provider}", self._delete_own, "DELETE"),
            route("/keys/{provider}/validate", self._validate, "POST"),
            route("/system-keys", self._list_system, "GET", admin=True),
            route("/system-keys/{provider}", self._set_system, "PUT", admin=True),
            route("/system-keys/{provider}", self._delete_system, "DELETE", admin=True),
            route("/users", self._list_users, "GET", admin=True),
            route("/users", self._create_user, "POST", admin=True),
            route("/users/{user_id}/gateway-keys", self._issue, "POST", admin=True),
            route("/gateway-keys", self._list_gateway_keys, "GET", admin=True),
            route("/gateway-keys/{key_id}", self._revoke, "DELETE", admin=True),
            route("/encryption/reseal", self._reseal, "POST", admin=True),
        ]

    def _guard(self, handler: Handler, *, admin: bool) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                identity = await self._auth.authenticate_headers(request.scope["headers"])
                if admin and not identity.is_admin:
                    raise ForbiddenError("this route needs an admin's gateway key")
                return await handler(request, identity)
            except ExternalServiceError as error:
                return self._error(error.status_code, error.error_type, error.error_code, error)
            except _Refused as refused:
                return self._error(refused.status, "invalid_request_error", refused.code, refused)
            except DatabaseError as exc:
                status, error_type, code = next(
                    (v for t, v in _STORE_ERRORS.items() if isinstance(exc, t)),
                    (503, "api_error", "database_unavailable"),
                )
                return self._error(status, error_type, code, exc)

        return guarded

    def _error(self, status: int, error_type: str, code: str, exc: Exception) -> Response:
        message = getattr(exc, "message", None) or str(exc)
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        return Response(
            self._redactor.scrub_bytes(orjson.dumps(body)),
            status_code=status,
            media_type="application/json",
        )

    def _owner(self, request: Request, identity: Identity) -> str:
        user = self._auth.acting_user(identity, request.scope["headers"])
        if user is None:
            raise _Refused(
                400,
                "no_user",
                "the master key has no user: name one in x-gateway-user, or use /system-keys",
            )
        return user

    def _changed(self, event: str, **fields: Any) -> None:
        self._watch.changed()
        self._log.info(event, **fields)

    # --- a caller's own provider keys -------------------------------------------------------

    async def _me(self, request: Request, identity: Identity) -> Response:
        body = {"user_id": identity.user_id, "role": identity.role, "key_id": identity.key_id}
        return JSONResponse(body)

    async def _list_own(self, request: Request, identity: Identity) -> Response:
        owner = self._owner(request, identity)
        keys = await self._records.list_provider_keys(owner)
        return JSONResponse({"user_id": owner, "keys": [_masked(k) for k in keys]})

    async def _set_own(self, request: Request, identity: Identity) -> Response:
        provider = _provider(request)
        owner = self._owner(request, identity)
        return await self._set(request, owner, provider)

    async def _delete_own(self, request: Request, identity: Identity) -> Response:
        return await self._delete(self._owner(request, identity), _provider(request))

    async def _validate(self, request: Request, identity: Identity) -> Response:
        provider = _provider(request)
        key = _key_field(await _json(request), provider)
        self._redactor.add(key)
        verdict = await validate_key(provider, key, bases=self._bases, client=self._http)
        return JSONResponse({"provider": provider, "status": verdict})

    # --- system keys ------------------------------------------------------------------------

    async def _list_system(self, request: Request, identity: Identity) -> Response:
        keys = await self._records.list_provider_keys(None)
        return JSONResponse({"user_id": None, "keys": [_masked(k) for k in keys]})

    async def _set_system(self, request: Request, identity: Identity) -> Response:
        return await self._set(request, None, _provider(request))

    async def _delete_system(self, request: Request, identity: Identity) -> Response:
        return await self._delete(None, _provider(request))

    async def _set(self, request: Request, owner: str | None, provider: str) -> Response:
        data = await _json(request)
        key = _key_field(data, provider)
        check, store_invalid = _flag(data, "validate"), _flag(data, "store_invalid")
        self._redactor.add(key)
        verdict = None
        if check:
            verdict = await validate_key(provider, key, bases=self._bases, client=self._http)
            if verdict == "invalid" and not store_invalid:
                raise _Refused(
                    422,
                    "invalid_provider_key",
                    f"{provider} rejected the key; it was not stored (send store_invalid: true "
                    "to store it anyway)",
                )
        info = await self._records.set_provider_key(owner, provider, key)
        self._changed("provider_key_set", owner=owner or "system", provider=provider)
        return JSONResponse({**_masked(info), "user_id": owner, "validation": verdict})

    async def _delete(self, owner: str | None, provider: str) -> Response:
        if not await self._records.delete_provider_key(owner, provider):
            raise UnknownRecordError(f"no {provider} key stored for {owner or 'the system'}")
        self._changed("provider_key_deleted", owner=owner or "system", provider=provider)
        return JSONResponse({"deleted": True, "provider": provider, "user_id": owner})

    # --- users and gateway keys -------------------------------------------------------------

    async def _list_users(self, request: Request, identity: Identity) -> Response:
        users = await self._records.list_users()
        return JSONResponse({"users": [{"user_id": u.user_id, "role": u.role} for u in users]})

    async def _create_user(self, request: Request, identity: Identity) -> Response:
        data = await _json(request)
        user_id = _user_id(data.get("user_id"))
        role = data.get("role", "user")
        if role not in _ROLES:
            raise _Refused(400, "invalid_role", "'role' must be 'admin' or 'user'")
        user = await self._records.create_user(user_id, role)
        self._changed("user_created", user=user_id, role=role, by=identity.key_id)
        return JSONResponse({"user_id": user.user_id, "role": user.role}, status_code=201)

    async def _issue(self, request: Request, identity: Identity) -> Response:
        user_id = _user_id(request.path_params["user_id"])
        issued = await self._records.issue_gateway_key(user_id)
        # Returned once, unscrubbed: it is the answer. Known to the redactor from now on.
        self._redactor.add(issued.key)
        self._changed("gateway_key_issued", user=user_id, key_id=issued.key_id, by=identity.key_id)
        body = {"key_id": issued.key_id, "user_id": issued.user_id, "key": issued.key}
        return JSONResponse(body, status_code=201)

    async def _list_gateway_keys(self, request: Request, identity: Identity) -> Response:
        user = request.query_params.get("user_id")
        keys = await self._records.list_gateway_keys(_user_id(user) if user else None)
        return JSONResponse(
            {
                "gateway_keys": [
                    {"key_id": k.key_id, "user_id": k.user_id, "revoked": k.revoked_at is not None}
                    for k in keys
                ]
            }
        )

    async def _revoke(self, request: Request, identity: Identity) -> Response:
        key_id = str(request.path_params["key_id"])
        await self._records.revoke_gateway_key(key_id)
        self._changed("gateway_key_revoked", key_id=key_id, by=identity.key_id)
        return JSONResponse({"revoked": True, "key_id": key_id})

    async def _reseal(self, request: Request, identity: Identity) -> Response:
        count = await self._records.reseal_all()
        self._log.info("provider_keys_resealed", count=count, by=identity.key_id)
        return JSONResponse({"resealed": count})


class AdminRoutes:
    """ASGI: paths under PREFIX go to the key admin, everything else to `inner`."""

    def __init__(self, inner: ASGIApp, admin: KeyAdmin) -> None:
        self._inner = inner
        self._admin = admin

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(PREFIX + "/"):
            await self._admin.app(scope, receive, send)
            return
        await self._inner(scope, receive, send)
