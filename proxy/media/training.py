"""`/v1/files` (purpose fine-tune) and `/v1/fine_tuning/jobs` for the training task groups.

Why it exists: LiteLLM's fine-tuning routes serve OpenAI and Azure only (enterprise-gated, no
events), so the gateway serves LoRA training itself, exactly as the openai SDK speaks it:
create, retrieve, list, list_events, cancel. Creating a job submits it through the one
retry/fallback policy (`proxy.resilience`); afterwards the job is only looked up: each
retrieve, list or events call asks the provider for its status once, and a failed look-up
leaves the job as it was (the next call asks again). With `gateway_settings.media.webhooks`
the provider calls back instead (`POST /gateway/webhooks/<provider>`, signature verified by
the plugin, applied once however often it is delivered). Unknown jobs are a 404; cancelling a
finished job is a 400 naming its state.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request

from core.redact import Redactor
from proxy.asgi import Receive, Scope, Send, authenticate, send_error, send_json
from proxy.errors import (
    AuthenticationError,
    ExternalServiceError,
    InvalidRequestError,
    NotFoundError,
)
from proxy.media.errors import MediaInvalidRequestError, is_plugin_error, plugin_error
from proxy.media.jobs import TERMINAL, JobRecord, Store
from proxy.media.providers import ImageProvider
from proxy.media.settings import MediaSettings
from proxy.resilience import Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute

__all__ = ["TrainingRoutes"]

_JOB = re.compile(r"^/v1/fine_tuning/jobs/(ftjob-[0-9a-f]+)(/events|/cancel)?$")
_WEBHOOK = re.compile(r"^/gateway/webhooks/([a-z0-9_-]+)$")
_SEEN_CALLBACKS = 10000
_JOBS = "/v1/fine_tuning/jobs"
_FILES = "/v1/files"
_PAGE = 20


class TrainingRoutes:
    """Serves the fine-tuning surface; `handle` says whether it served the request."""

    def __init__(
        self,
        *,
        routing: RoutingTable,
        resilience: Resilience,
        settings: MediaSettings,
        providers: Mapping[str, ImageProvider],
        redactor: Redactor,
    ) -> None:
        self._routing = routing
        self._resilience = resilience
        self._settings = settings
        self._providers = providers
        self._redactor = redactor
        self._store = Store()
        # Provider request ids whose callback was applied: Fal delivers again until a 2xx.
        self._callbacks: OrderedDict[str, None] = OrderedDict()
        self._log = structlog.get_logger("proxy.media.training")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        path, method = scope.get("path", ""), scope.get("method")
        if method == "POST" and (hook := _WEBHOOK.match(path)) is not None:
            if hook[1] not in self._providers:
                return False
            try:
                await self._callback(hook[1], scope, receive, send)
            except ExternalServiceError as error:
                await send_error(send, error, self._redactor)
            return True
        if path == _FILES and method == "POST":
            return await self._guarded(scope, receive, send, self._upload)
        if path == _JOBS and method in ("POST", "GET"):
            work = self._create if method == "POST" else self._list
            return await self._guarded(scope, receive, send, work)
        if (match := _JOB.match(path)) is not None:
            action = match[2] or ""
            if (method, action) in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
                scope["gateway_job"] = (match[1], action)
                return await self._guarded(scope, receive, send, self._job)
        return False

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, work: Any) -> bool:
        try:
            user = await authenticate(scope)
            served: bool = await work(scope, receive, send, user)
        except ExternalServiceError as error:
            await send_error(send, error, self._redactor)
            return True
        return served

    # --- files -------------------------------------------------------------------------------

    async def _upload(self, scope: Scope, receive: Receive, send: Send, user: str | None) -> bool:
        form = await Request(scope, receive).form()
        if form.get("purpose") != "fine-tune":
            raise InvalidRequestError("only purpose 'fine-tune' files are kept by the gateway")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise MediaInvalidRequestError("a 'file' part is required", param="file")
        record = self._store.add_file(
            upload.filename or "upload", "fine-tune", await upload.read(), user
        )
        await send_json(send, 200, orjson.dumps(record.view()), [])
        return True

    # --- jobs --------------------------------------------------------------------------------

    def _training_route(self, model: Any) -> TaskRoute | None:
        route = self._routing.get(model) if isinstance(model, str) else None
        if route is None or not all(
            hasattr(self._providers.get(d.provider), "parse_training") for d in route.deployments
        ):
            return None
        return route

    def _archive(self, name: Any, user: str | None) -> bytes | None:
        if not isinstance(name, str) or not name:
            raise MediaInvalidRequestError("'training_file' is required", param="training_file")
        if not name.startswith("file-"):
            return None  # a URL: the provider checks it
        record = self._store.files.get(name)
        if record is None or (user is not None and record.user != user):
            raise MediaInvalidRequestError(f"no file {name!r}", param="training_file")
        return record.data

    async def _create(self, scope: Scope, receive: Receive, send: Send, user: str | None) -> bool:
        body = await Request(scope, receive).body()
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError("request body is not valid JSON") from exc
        if not isinstance(request, dict):
            raise InvalidRequestError("request body must be a JSON object")
        route = self._training_route(request.get("model"))
        if route is None:
            raise MediaInvalidRequestError(
                f"model {request.get('model')!r} is not a training task", param="model"
            )
        archive = self._archive(request.get("training_file"), user)
        first = route.deployments[0]
        provider = self._providers[first.provider]
        try:
            parsed = provider.parse_training(request, archive)  # type: ignore[attr-defined]
        except Exception as exc:
            if not is_plugin_error(exc):
                raise
            raise plugin_error(exc, first.provider, self._redactor, before_call=True) from exc
        jobs: dict[str, Any] = {}

        async def call(deployment: Deployment, key: str) -> str:
            plugin: Any = self._providers[deployment.provider]
            job = jobs.setdefault(deployment.model, plugin.new_job())
            try:
                request_id: str = await plugin.submit_training(
                    job,
                    parsed,
                    model=deployment.model,
                    api_base=_base(deployment),
                    key=key,
                    webhook_url=self._settings.webhooks.callback_url,
                )
            except Exception as exc:
                if is_plugin_error(exc):
                    raise plugin_error(exc, deployment.provider, self._redactor) from exc
                raise
            return request_id

        outcome = await self._resilience.run(route, user, call)
        deployment = outcome.deployment
        record = JobRecord(
            id=self._store.new_job_id(),
            task=route.task,
            provider=deployment.provider,
            model=deployment.model,
            user=user,
            training_file=str(request.get("training_file")),
            metadata=dict(request.get("metadata") or {}),
            hyperparameters=dict(request.get("hyperparameters") or {}),
            provider_job=jobs[deployment.model],
            cost_usd=self._cost(deployment, provider.training_steps(parsed)),  # type: ignore[attr-defined]
        )
        record.event("Job created")
        record.event(f"Submitted to {deployment.provider} as request {outcome.value}")
        record.status = "queued"
        self._store.add_job(record)
        self._log.info("training_job_created", job=record.id, model=deployment.model)
        await self._answer(send, record)
        return True

    async def _list(self, scope: Scope, receive: Receive, send: Send, user: str | None) -> bool:
        query = Request(scope).query_params
        jobs = self._store.visible(user)
        page = _page(jobs, query.get("after"), query.get("limit"))
        for job in page:
            await self._refresh(job)
        body = {"object": "list", "data": [j.view() for j in page], "has_more": _more(jobs, page)}
        await send_json(send, 200, orjson.dumps(body), [])
        return True

    async def _job(self, scope: Scope, receive: Receive, send: Send, user: str | None) -> bool:
        job_id, action = scope["gateway_job"]
        job = self._store.jobs.get(job_id)
        if job is None or (user is not None and job.user != user):
            raise NotFoundError(f"no fine-tuning job {job_id!r}", status_code=404)
        await self._refresh(job)
        if action == "/cancel":
            await self._cancel(job)
        if action == "/events":
            query = Request(scope).query_params
            events = list(reversed(job.events))  # newest first, as OpenAI lists them
            page = _page(events, query.get("after"), query.get("limit"))
            body = {"object": "list", "data": page, "has_more": _more(events, page)}
            await send_json(send, 200, orjson.dumps(body), [])
            return True
        await self._answer(send, job)
        return True

    async def _cancel(self, job: JobRecord) -> None:
        if job.status in TERMINAL:
            raise InvalidRequestError(
                f"job {job.id} has already {job.status}; only a queued or running job can be"
                " cancelled"
            )
        await self._providers[job.provider].cancel(job.provider_job)
        job.finish("cancelled")

    async def _callback(self, provider: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A provider's completion callback: verified, applied once, acknowledged always."""
        request = Request(scope, receive)
        body = await request.body()
        hooks = self._settings.webhooks
        plugin: Any = self._providers[provider]
        try:
            callback = plugin.verify_callback(request.headers, body, hooks.keys, hooks.max_skew_s)
        except Exception as exc:
            if not is_plugin_error(exc):
                raise
            self._log.warning("webhook_rejected", provider=provider, reason=str(exc))
            raise AuthenticationError(str(exc), provider=provider, status_code=401) from exc
        duplicate = callback.request_id in self._callbacks
        job = self._by_request(provider, callback.request_id)
        if not duplicate and job is not None and job.status not in TERMINAL:
            job.event(f"Callback received from {provider}")
            try:
                job.fine_tuned_model = plugin.callback_lora(callback)
                job.finish("succeeded")
            except Exception as exc:
                if not is_plugin_error(exc):
                    raise
                if "cancel" in str(exc).lower():
                    job.finish("cancelled")
                else:
                    job.finish("failed", error=str(exc))
        self._callbacks[callback.request_id] = None
        while len(self._callbacks) > _SEEN_CALLBACKS:
            self._callbacks.popitem(last=False)
        body_out = {"ok": True, "duplicate": duplicate, "known": job is not None}
        await send_json(send, 200, orjson.dumps(body_out), [])

    def _by_request(self, provider: str, request_id: str) -> JobRecord | None:
        for job in self._store.jobs.values():
            handle = getattr(job.provider_job, "handle", None)
            if job.provider == provider and getattr(handle, "request_id", None) == request_id:
                return job
        return None

    async def _refresh(self, job: JobRecord) -> None:
        """Ask the provider once how the job stands; a failed look-up changes nothing. With
        callbacks configured the provider tells us instead, and nothing is asked."""
        if job.status in TERMINAL or self._settings.webhooks.callback_url:
            return
        plugin: Any = self._providers[job.provider]
        try:
            status = await plugin.poll(job.provider_job)
            job.progress(status.logs)
            if status.state == "IN_QUEUE" and status.position != job.position:
                job.position = status.position
                job.event(f"Queued at position {status.position}")
            if status.state == "IN_PROGRESS" and job.status != "running":
                job.status = "running"
            if status.state == "COMPLETED":
                if status.error:
                    job.finish("failed", error=status.error)
                else:
                    job.fine_tuned_model = await plugin.trained_lora(job.provider_job)
                    job.finish("succeeded")
        except Exception as exc:
            if not is_plugin_error(exc):
                raise
            error = plugin_error(exc, job.provider, self._redactor)
            if error.retriable:
                self._log.warning("training_status_unavailable", job=job.id, error=error.message)
                return
            job.finish("failed", error=error.message)

    def _cost(self, deployment: Deployment, steps: int) -> float | None:
        price = self._settings.prices.get(deployment.model)
        if price is None or price.per_1000_steps is None:
            return None
        return round(price.per_1000_steps * steps / 1000, 6)

    async def _answer(self, send: Send, job: JobRecord) -> None:
        headers = [(b"x-gateway-provider", job.provider.encode())]
        if job.cost_usd is not None:
            headers.append((b"x-gateway-cost-usd", f"{job.cost_usd:.6f}".encode()))
        await send_json(send, 200, orjson.dumps(job.view()), headers)


def _base(deployment: Deployment) -> str | None:
    value = deployment.params.get("api_base")
    return value if isinstance(value, str) else None


def _page(items: list[Any], after: str | None, limit: str | None) -> list[Any]:
    start = 0
    if after:
        ids = [item.id if isinstance(item, JobRecord) else item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    size = int(limit) if limit and limit.isdigit() else _PAGE
    return items[start : start + max(1, min(size, 100))]


def _more(items: list[Any], page: list[Any]) -> bool:
    return bool(page) and items[-1] is not page[-1]
