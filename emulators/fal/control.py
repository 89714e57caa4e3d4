"""The Fal emulator's own control routes (``/_emulator/fal/*``): job durations, faults per
queue operation, and what the queue holds.

Why it exists: the shared control API (``emulators.http.control``) knows nothing of queues;
tests in other processes need these knobs over HTTP too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulators.fal.queue import OPERATIONS
from emulators.http.faults import FaultSpecError

if TYPE_CHECKING:
    from emulators.fal.app import FalRuntime

__all__ = ["control_config", "control_fault", "control_stats"]


def _runtime(request: Request) -> FalRuntime:
    runtime: FalRuntime = request.app.state.emulator_runtime
    return runtime


async def control_config(request: Request) -> Response:
    body = await request.json()
    timings = _runtime(request).queue.timings
    try:
        if "queue_s" in body:
            timings.queue_s = max(0.0, float(body["queue_s"]))
        if "run_s" in body:
            timings.run_s = max(0.0, float(body["run_s"]))
        if "training_s" in body:
            timings.training_s = max(0.0, float(body["training_s"]))
        if "webhook_retry_s" in body:
            _runtime(request).webhooks.retry_s = max(0.0, float(body["webhook_retry_s"]))
    except (TypeError, ValueError) as exc:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
    return JSONResponse({"ok": True})


async def control_fault(request: Request) -> Response:
    body = await request.json()
    operation = body.get("operation")
    if operation not in OPERATIONS:
        return JSONResponse({"ok": False, "error": f"operation: one of {OPERATIONS}"}, 400)
    count = body.get("count")
    try:
        _runtime(request).queue.set_fault(operation, str(body.get("spec")), count)
    except FaultSpecError as exc:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
    return JSONResponse({"ok": True})


async def control_stats(request: Request) -> Response:
    queue = _runtime(request).queue
    now = queue.now()
    states: dict[str, int] = {}
    for job in queue.jobs.values():
        states[job.state(now)] = states.get(job.state(now), 0) + 1
    deliveries = [list(d) for d in _runtime(request).webhooks.deliveries]
    return JSONResponse(
        {
            "jobs": len(queue.jobs),
            "cancels": queue.cancels,
            "states": states,
            "webhooks": deliveries,
        }
    )
