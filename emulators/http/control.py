"""The ``/_emulator/*`` control API shared by every emulator, and the app factory around it.

Why it exists: tests running in another process (the proxy's, a benchmark's) must be able to
set faults, change the rate limit and read request statistics over HTTP; these routes need no
authentication because they are never part of a real provider's surface.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulators.http.faults import FaultSpecError
from emulators.http.runtime import EmulatorRuntime

__all__ = ["build_app", "runtime_of"]


def runtime_of(request: Request) -> EmulatorRuntime:
    runtime: EmulatorRuntime = request.app.state.emulator_runtime
    return runtime


def build_app(routes: Sequence[BaseRoute], runtime: EmulatorRuntime) -> Starlette:
    """A Starlette app serving ``routes`` plus the control API, holding ``runtime``."""
    control = [
        Route("/_emulator/faults", _set_fault, methods=["POST"]),
        Route("/_emulator/faults", _clear_faults, methods=["DELETE"]),
        Route("/_emulator/stats", _stats, methods=["GET"]),
        Route("/_emulator/reset", _reset, methods=["POST"]),
        Route("/_emulator/config", _config, methods=["POST"]),
        Route("/_emulator/health", _health, methods=["GET"]),
    ]
    app = Starlette(routes=[*control, *routes])
    app.state.emulator_runtime = runtime
    return app


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw else {}
    if not isinstance(data, dict):
        raise ValueError("control body must be a JSON object")
    return data


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=400)


async def _set_fault(request: Request) -> Response:
    try:
        body = await _body(request)
        count = body.get("count")
        runtime_of(request).set_fault(str(body["spec"]), int(count) if count is not None else None)
    except (KeyError, ValueError, FaultSpecError) as exc:
        return _bad(str(exc))
    return JSONResponse({"ok": True})


async def _clear_faults(request: Request) -> Response:
    runtime_of(request).clear_faults()
    return JSONResponse({"ok": True})


async def _stats(request: Request) -> Response:
    return JSONResponse(runtime_of(request).stats())


async def _reset(request: Request) -> Response:
    runtime_of(request).reset()
    return JSONResponse({"ok": True})


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _config(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        body = await _body(request)
        if "rate_limit_rps" in body or "rate_limit_burst" in body:
            rps = body.get("rate_limit_rps", runtime.rate_limit_rps)
            burst = body.get("rate_limit_burst")
            runtime.set_rate_limit(
                float(rps) if rps is not None else None, int(burst) if burst else None
            )
        if "allowed_keys" in body:
            keys = body["allowed_keys"]
            runtime.allowed_keys = frozenset(map(str, keys)) if keys is not None else None
        if "hang_seconds" in body:
            runtime.hang_seconds = float(body["hang_seconds"])
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return JSONResponse({"ok": True})
