"""`/v1/videos` for the video task groups, as the openai SDK's `videos` resource speaks it:
create (multipart, the input image as `input_reference`), retrieve, list, download_content,
delete.

Why it exists: LiteLLM cannot serve `/v1/videos` through a custom provider, so the gateway
serves image-to-video itself, over the provider's queue. Creating a video validates it with
every provider of the task (a 400 naming the field before any call), then submits it through
the one retry/fallback policy; the answer is the queued job at once, as OpenAI's is. The job
is kept in the gateway database (`proxy.media.jobs`) and only ever looked up afterwards:
each retrieve asks the provider once (status, queue position and progress from its logs), and
the sweep collects jobs nobody reads, also after a restart. A client that disconnects, or
whose `x-gateway-timeout-ms` passes, before the job is answered has it cancelled; deleting an
unfinished video cancels it too. Content is fetched from the provider's storage on download.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request

from core.http import TIMEOUT_HEADER, parse_timeout
from core.redact import Redactor
from database import StoredJob
from proxy.accounting import priced, record_cost
from proxy.asgi import (
    Receive,
    Scope,
    Send,
    authenticate,
    header,
    send_error,
    send_json,
    unless_disconnected,
)
from proxy.errors import ExternalServiceError, InvalidRequestError, NotFoundError
from proxy.media.errors import MediaInvalidRequestError, translated
from proxy.media.incoming import read_form
from proxy.media.jobs import Event, JobBook, fail, new_id, progress_events
from proxy.media.settings import MediaSettings
from proxy.resilience import Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute

__all__ = ["DEFAULT_TASK", "KIND", "VideoRoutes", "apply_status", "video_view"]

KIND = "video"
DEFAULT_TASK = "video-generation"
FINISHED = frozenset({"completed", "failed"})
_VIDEOS = "/v1/videos"
# Any id: one that is not the gateway's is a 404 here, not a call to LiteLLM's OpenAI route.
_VIDEO = re.compile(r"^/v1/videos/([^/]+)(/content)?$")
_TIMEOUT_HEADER = TIMEOUT_HEADER.encode()
# How soon the SDK's poll helper asks again (it reads this header).
_POLL_AFTER_MS = b"500"


def video_view(job: StoredJob) -> dict[str, Any]:
    inputs = job.inputs
    return {
        "id": job.id,
        "object": "video",
        "created_at": int(job.created_at),
        "completed_at": int(job.finished_at)
        if job.status == "completed" and job.finished_at
        else None,
        "error": {"code": job.error["code"], "message": job.error["message"]}
        if job.error
        else None,
        "expires_at": None,
        "model": job.task,
        "progress": job.progress,
        "prompt": inputs.get("prompt"),
        "remixed_from_video_id": None,
        "seconds": str(inputs.get("seconds")),
        "size": inputs.get("size"),
        "status": job.status,
        # The gateway's own fields.
        "queue_position": job.position,
        "provider": job.provider,
        "provider_model": job.model,
        "cost_usd": job.cost_usd,
    }


async def apply_status(plugin: Any, job: StoredJob, status: Any, book: JobBook) -> list[Event]:
    """A video job after the provider's `status`: queue position, progress, the outcome."""
    events = progress_events(job, status.logs)
    state, progress = plugin.video_status(status, job.progress)
    job.position = status.position if status.state == "IN_QUEUE" else None
    job.progress = progress
    if state == "failed":
        events += fail(job, str(status.error), code="video_generation_failed")
    elif state == "completed":
        video = await book.call(job, lambda p, provider_job: p.video_result(provider_job))
        job.result = {"url": video.url, "content_type": video.content_type}
        job.status, job.finished_at = "completed", time.time()
        events.append(("info", "Video completed", None))
    else:
        job.status = state
    return events


class VideoRoutes:
    """Serves `/v1/videos`; `handle` says whether it served the request."""

    def __init__(
        self,
        *,
        routing: RoutingTable,
        resilience: Resilience,
        settings: MediaSettings,
        providers: Mapping[str, Any],
        redactor: Redactor,
        book: JobBook,
    ) -> None:
        self._routing = routing
        self._resilience = resilience
        self._settings = settings
        self._providers = providers
        self._redactor = redactor
        self._book = book
        self._log = structlog.get_logger("proxy.media.videos")
        book.resume(KIND, apply_status)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        path, method = scope.get("path", ""), scope.get("method")
        match = _VIDEO.match(path)
        if path == _VIDEOS and method in ("POST", "GET"):
            work: Any = self._create if method == "POST" else self._list
        elif match is not None and (method, match[2]) in (("GET", None), ("DELETE", None)):
            work = self._retrieve if method == "GET" else self._delete
        elif match is not None and method == "GET":
            work = self._content
        else:
            return False
        try:
            user = await authenticate(scope)
            await work(scope, receive, send, user, match[1] if match else None)
        except ExternalServiceError as error:
            await send_error(send, error, self._redactor)
        return True

    # --- create ------------------------------------------------------------------------------

    def _route(self, model: Any) -> TaskRoute:
        route = self._routing.get(model if isinstance(model, str) and model else DEFAULT_TASK)
        if route is None or not all(
            hasattr(self._providers.get(d.provider), "parse_video") for d in route.deployments
        ):
            raise MediaInvalidRequestError(f"model {model!r} is not a video task", param="model")
        return route

    async def _form(self, scope: Scope, receive: Receive) -> tuple[dict[str, Any], bytes | None]:
        form = await read_form(scope, receive)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("input_reference")
        image = await upload.read() if isinstance(upload, UploadFile) else None
        return fields, image

    async def _create(
        self, scope: Scope, receive: Receive, send: Send, user: str | None, _: str | None
    ) -> None:
        fields, image = await self._form(scope, receive)
        route = self._route(fields.get("model"))
        image_url = fields.get("input_reference[image_url]")
        file_id = fields.get("input_reference[file_id]")
        if image is None and file_id:
            stored = await self._book.records.file(file_id)
            if stored is None or (user is not None and stored.owner != user):
                raise MediaInvalidRequestError(f"no file {file_id!r}", param="input_reference")
            image = stored.data
        parsed: dict[str, Any] = {}
        for deployment in route.deployments:
            plugin = self._providers[deployment.provider]
            with translated(deployment.provider, self._redactor, before_call=True):
                if deployment.provider not in parsed:
                    parsed[deployment.provider] = plugin.parse_video(fields, image, image_url)
                plugin.video_seconds(parsed[deployment.provider], deployment.model)
        deadline = _deadline(scope)
        jobs: dict[str, Any] = {}
        saved: list[StoredJob] = []
        work = self._submit(
            route, user, parsed, jobs=jobs, saved=saved, deadline=deadline, send=send
        )
        if await unless_disconnected(receive, work):
            self._log.info("video_abandoned", reason="client_disconnected")
            await self._abandon(route, jobs, saved)

    async def _submit(
        self,
        route: TaskRoute,
        user: str | None,
        parsed: Mapping[str, Any],
        *,
        jobs: dict[str, Any],
        saved: list[StoredJob],
        deadline: float | None,
        send: Send,
    ) -> None:
        async def call(deployment: Deployment, key: str) -> str:
            plugin = self._providers[deployment.provider]
            job = jobs.setdefault(deployment.model, plugin.new_job())
            api_base = deployment.params.get("api_base")
            with translated(deployment.provider, self._redactor):
                request_id: str = await plugin.submit_video(
                    job,
                    parsed[deployment.provider],
                    model=deployment.model,
                    api_base=api_base if isinstance(api_base, str) else None,
                    key=key,
                )
            return request_id

        try:
            outcome = await self._resilience.run(route, user, call, deadline=deadline)
        except ExternalServiceError:
            await self._abandon(route, jobs, saved)
            raise
        deployment = outcome.deployment
        plugin = self._providers[deployment.provider]
        request = parsed[deployment.provider]
        seconds = plugin.video_seconds(request, deployment.model)
        record = StoredJob(
            id=new_id("video_"),
            kind=KIND,
            owner=user,
            task=route.task,
            provider=deployment.provider,
            model=deployment.model,
            status="queued",
            inputs={"prompt": request.prompt, "seconds": seconds, "size": request.reported_size},
            cost_usd=self._cost(deployment, seconds),
            request_id=outcome.value,
            handle=plugin.job_handle(jobs[deployment.model]),
        )
        self._book.remember(record.id, jobs[deployment.model])
        submitted = f"Submitted to {deployment.provider} as request {outcome.value}"
        await self._book.records.add_job(record, [("info", submitted, None)])
        saved.append(record)
        self._log.info("video_created", job=record.id, model=deployment.model)
        headers = [
            (b"x-gateway-task", route.task.encode()),
            (b"x-gateway-provider", deployment.provider.encode()),
            (b"x-gateway-model", deployment.model.encode()),
            (b"x-gateway-attempts", str(outcome.total_attempts).encode()),
            (b"x-gateway-fallback", b"true" if outcome.fallback else b"false"),
        ]
        await self._answer(send, record, headers)

    async def _abandon(
        self, route: TaskRoute, jobs: Mapping[str, Any], saved: list[StoredJob]
    ) -> None:
        """Cancel the provider jobs of a create nobody will read the answer of."""
        by_model = {d.model: d.provider for d in route.deployments}
        for model, job in jobs.items():
            await self._providers[by_model[model]].cancel(job)
        for record in saved:
            events = fail(record, "cancelled: the client went away", code="cancelled")
            await asyncio.shield(self._book.records.save(record, events))

    def _cost(self, deployment: Deployment, seconds: int) -> float | None:
        price = self._settings.prices.get(deployment.model)
        cost = priced(getattr(price, "per_second", None), seconds)
        # The video's cost is this request's, for the metrics (its header is the job's own).
        record_cost(cost)
        return cost

    # --- reading -----------------------------------------------------------------------------

    async def _job(self, job_id: str | None, user: str | None) -> StoredJob:
        job = await self._book.visible(job_id or "", user)
        if job is None:
            raise NotFoundError(f"no video {job_id!r}", status_code=404)
        return await self._book.refresh(job, apply_status, finished=job.status in FINISHED)

    async def _retrieve(
        self, scope: Scope, receive: Receive, send: Send, user: str | None, job_id: str | None
    ) -> None:
        await self._answer(send, await self._job(job_id, user), [])

    async def _list(
        self, scope: Scope, receive: Receive, send: Send, user: str | None, _: str | None
    ) -> None:
        query = Request(scope).query_params
        limit = query.get("limit", "")
        page, more = await self._book.records.jobs(
            KIND,
            owner=user,
            after=query.get("after"),
            limit=int(limit) if limit.isdigit() else 20,
            newest_first=query.get("order", "desc") != "asc",
        )
        views = []
        for listed in page:
            finished = listed.status in FINISHED
            views.append(
                video_view(await self._book.refresh(listed, apply_status, finished=finished))
            )
        body = {
            "object": "list",
            "data": views,
            "has_more": more,
            "first_id": views[0]["id"] if views else None,
            "last_id": views[-1]["id"] if views else None,
        }
        await send_json(send, 200, orjson.dumps(body), [])

    async def _content(
        self, scope: Scope, receive: Receive, send: Send, user: str | None, job_id: str | None
    ) -> None:
        variant = Request(scope).query_params.get("variant") or "video"
        if variant != "video":
            raise MediaInvalidRequestError(
                f"variant {variant!r} is not available: only 'video' is", param="variant"
            )
        job = await self._job(job_id, user)
        if job.status != "completed" or job.result is None:
            raise InvalidRequestError(f"video {job.id} is {job.status}; it has no content yet")
        url = str(job.result["url"])
        kind, data = await self._book.call(job, lambda plugin, _: plugin.download(url))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", str(job.result.get("content_type") or kind).encode()),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _delete(
        self, scope: Scope, receive: Receive, send: Send, user: str | None, job_id: str | None
    ) -> None:
        job = await self._book.visible(job_id or "", user)
        if job is None:
            raise NotFoundError(f"no video {job_id!r}", status_code=404)
        if job.status not in FINISHED:
            with contextlib.suppress(ExternalServiceError):
                await self._book.call(job, lambda plugin, provider_job: plugin.cancel(provider_job))
        await self._book.records.delete_job(job.id)
        body = {"id": job.id, "object": "video.deleted", "deleted": True}
        await send_json(send, 200, orjson.dumps(body), [])

    async def _answer(self, send: Send, job: StoredJob, headers: list[tuple[bytes, bytes]]) -> None:
        headers = [*headers, (b"openai-poll-after-ms", _POLL_AFTER_MS)]
        if job.cost_usd is not None:
            headers.append((b"x-gateway-cost-usd", f"{job.cost_usd:.6f}".encode()))
        await send_json(send, 200, orjson.dumps(video_view(job)), headers)


def _deadline(scope: Scope) -> float | None:
    budget = header(scope, _TIMEOUT_HEADER)
    if budget is None:
        return None
    try:
        return asyncio.get_running_loop().time() + parse_timeout(budget)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
