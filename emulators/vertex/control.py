"""The Vertex emulator's own control routes (``/_emulator/vertex/*``).

Why it exists: the shared control API (``emulators.http.control``: faults, rate limit, static
tokens as ``allowed_keys``, stats, reset) knows nothing of OAuth or refusals; tests in other
processes need these knobs over HTTP too:

- ``POST /_emulator/vertex/config {"token_lifetime_s": 60, "allowed_projects": ["p"] | null}``
- ``POST /_emulator/vertex/service-account {"project": "p", "name": "gateway"}`` -> a
  service-account key file the emulator generated (``token_uri`` = this emulator's
  ``/token``), so its assertions' signatures are verified;
- ``POST /_emulator/vertex/keys {"account": e-mail, "public_key_pem": PEM}``: verify that
  account's signatures from now on;
- ``POST /_emulator/vertex/tokens/expire``: every token minted so far stops working (401);
- ``POST /_emulator/vertex/blocks {"marker": "[[block:SAFETY]]", "count": 1}`` / ``DELETE``:
  the next ``count`` model calls (every one, when null) behave as if their text held the
  marker (``emulators.vertex.safety``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.vertex.runtime import VertexRuntime
from emulators.vertex.tokens import new_service_account

__all__ = ["CONTROL_ROUTES"]


def _runtime(request: Request) -> VertexRuntime:
    runtime: VertexRuntime = request.app.state.emulator_runtime
    return runtime


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw else {}
    if not isinstance(data, dict):
        raise ValueError("control body must be a JSON object")
    return data


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=400)


async def _config(request: Request) -> Response:
    runtime = _runtime(request)
    try:
        body = await _body(request)
        if "token_lifetime_s" in body:
            lifetime = int(body["token_lifetime_s"])
            if lifetime < 1:
                raise ValueError("token_lifetime_s must be at least 1")
            runtime.tokens.lifetime_s = lifetime
        if "allowed_projects" in body:
            projects = body["allowed_projects"]
            runtime.allowed_projects = frozenset(map(str, projects)) if projects else None
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return JSONResponse({"ok": True})


async def _service_account(request: Request) -> Response:
    try:
        body = await _body(request)
    except ValueError as exc:
        return _bad(str(exc))
    token_uri = f"{str(request.base_url).rstrip('/')}/token"
    info, key = new_service_account(
        str(body.get("project", "emulated-project")),
        token_uri,
        name=str(body.get("name", "emulator")),
    )
    _runtime(request).tokens.add_generated(info["client_email"], key)
    return JSONResponse(info)


async def _keys(request: Request) -> Response:
    try:
        body = await _body(request)
        _runtime(request).tokens.register_key(str(body["account"]), str(body["public_key_pem"]))
    except (KeyError, ValueError, TypeError) as exc:
        return _bad(str(exc))
    return JSONResponse({"ok": True})


async def _expire(request: Request) -> Response:
    _runtime(request).tokens.expire_all()
    return JSONResponse({"ok": True})


async def _blocks(request: Request) -> Response:
    try:
        body = await _body(request)
        count = body.get("count")
        _runtime(request).force_marker(str(body["marker"]), int(count) if count else None)
    except (KeyError, ValueError, TypeError) as exc:
        return _bad(str(exc))
    return JSONResponse({"ok": True})


async def _clear_blocks(request: Request) -> Response:
    _runtime(request).clear_forced()
    return JSONResponse({"ok": True})


CONTROL_ROUTES = [
    Route("/_emulator/vertex/config", _config, methods=["POST"]),
    Route("/_emulator/vertex/service-account", _service_account, methods=["POST"]),
    Route("/_emulator/vertex/keys", _keys, methods=["POST"]),
    Route("/_emulator/vertex/tokens/expire", _expire, methods=["POST"]),
    Route("/_emulator/vertex/blocks", _blocks, methods=["POST"]),
    Route("/_emulator/vertex/blocks", _clear_blocks, methods=["DELETE"]),
]
