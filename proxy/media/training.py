"""`/v1/files` (purpose fine-tune) and `/v1/fine_tuning/jobs` for the training task groups.

Why it exists: LiteLLM's fine-tuning routes serve OpenAI and Azure only (enterprise-gated, no
events), so the gateway serves LoRA training itself, exactly as the openai SDK speaks it:
create, retrieve, list, list_events, cancel. Creating a job submits it through the one
retry/fallback policy (`proxy.resilience`); afterwards the job is only looked up: each
retrieve, list or events call asks the provider for its status once (`proxy.media.jobs`), and
a failed look-up leaves the job as it was (the next call asks again). Jobs and files are kept
in the gateway database, so they survive a restart. With `gateway_settings.media.webhooks`
the provider calls back instead (`POST /gateway/webhooks/<provider>`, signature verified by
the plugin, applied once however often it is delivered). Unknown jobs are a 404; cancelling a
finished job is a 400 naming its state.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request

from core.redact import Redactor
from database import FileTooLargeError, StoredJob
from proxy.accounting import priced, record_cost
from proxy.asgi import Receive, Scope, Send, authenticate, send_error, send_json
from proxy.contract import RequestContract
from proxy.errors import (
    AuthenticationError,
    ExternalServiceError,
    InvalidRequestError,
    NotFoundError,
)
from proxy.media.errors import MediaInvalidRequestError, is_plugin_error, translated
from proxy.media.incoming import read_form
from proxy.media.jobs import Event, JobBook, event_view, fail, file_view, new_id, progress_events
from proxy.media.providers import ImageProvider
from proxy.media.settings import MediaSettings
from proxy.resilience import Resilience
from proxy.routing import Deployment, RoutingTable, TaskRoute

__all__ = ["KIND", "TERMINAL", "TrainingRoutes", "apply_status"]

KIND = "fine_tuning"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Any id: one that is not the gateway's is a 404 here, not LiteLLM's enterprise-only route.
_JOB = re.compile(r"^/v1/fine_tuning/jobs/([^/]+)(/events|/cancel)?$")
_WEBHOOK = re.compile(r"^/gateway/webhooks/([a-z0-9_-]+)$")
_SEEN_CALLBACKS = 10000
_JOBS = "/v1/fine_tuning/jobs"
_FILES = "/v1/files"
_PURPOSES = frozenset({"fine-tune", "vision"})
_PAGE = 20


def training_view(job: StoredJob) -> dict[str, Any]:
    inputs, result = job.inputs, job.result or {}
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": int(job.created_at),
        "error": job.error,
        "fine_tuned_model": result.get("fine_tuned_model"),
        "finished_at": int(job.finished_at) if job.finished_at is not None else None,
        "hyperparameters": inputs.get("hyperparameters") or {},
        "model": job.task,
        "organization_id": "gateway",
        "result_files": [],
        "seed": 0,
        "status": job.status,
        "trained_tokens": None,
        "training_file": inputs.get("training_file"),
        "validation_file": None,
        "estimated_finish": None,
        "integrations": None,
        "metadata": inputs.get("metadata") or None,
        "method": None,
        # The gateway's own fields: its place in the provider's queue, who trains it, and
        # what it costs.
        "queue_position": job.position if job.status == "queued" else None,
        "provider": job.provider,
        "provider_model": job.model,
        "cost_usd": job.cost_usd,
    }


def _finish(job: StoredJob, status: str) -> list[Event]:
    job.status = status
    job.finished_at = time.time()
    return [("info", f"Job {status}", None)]


async def apply_status(plugin: Any, job: StoredJob, status: Any, book: JobBook) -> list[Event]:
    """A training job after the provider's `status`: new logs, queue position, the outcome."""
    events = progress_events(job, status.logs)
    if status.state == "IN_QUEUE" and status.position != job.position:
        job.position = status.position
        events.append(("info", f"Queued at position {status.position}", None))
    if status.state == "IN_PROGRESS" and job.status != "running":
        job.status = "running"
    if status.state == "COMPLETED":
        if status.error:
            events += fail(job, str(status.error), code="training_failed")
        else:
            lora = await book.call(job, lambda p, provider_job: p.trained_lora(provider_job))
            job.result = {"fine_tuned_model": lora}
            job.status, job.finished_at = "succeeded", time.time()
            events.append(("info", f"Job succeeded: fine-tuned model {lora}", None))
    return events


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
        book: JobBook,
        contract: RequestContract | None = None,
    ) -> None:
        self._contract = contract if contract is not None else RequestContract()
        self._routing = routing
        self._resilience = resilience
        self._settings = settings
        self._providers = providers
        self._redactor = redactor
        self._book = book
        # Provider request ids whose callback was applied: Fal delivers again until a 2xx.
        self._callbacks: OrderedDict[str, None] = OrderedDict()
        self._log = structlog.get_logger("proxy.media.training")
        if self.polled:
            book.resume(KIND, apply_status)

    @property
    def polled(self) -> bool:
        """Whether jobs are looked up (no callbacks configured)."""
        return not self._settings.webhooks.callback_url

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
        form = await read_form(scope, receive)
        purpose = form.get("purpose")
        if purpose not in _PURPOSES:
            raise InvalidRequestError(
                "only purpose 'fine-tune' or 'vision' files are kept by the gateway"
            )
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise MediaInvalidRequestError("a 'file' part is required", param="file")
        try:
            record = await self._book.records.add_file(
                new_id("file-"),
                owner=user,
                filename=upload.filename or "upload",
                purpose=str(purpose),
                data=await upload.read(),
            )
        except FileTooLargeError as exc:
            raise MediaInvalidRequestError(str(exc), param="file") from exc
        await send_json(send, 200, orjson.dumps(file_view(record)), [])
        return True

    # --- jobs --------------------------------------------------------------------------------

    def _training_route(self, model: Any) -> TaskRoute | None:
        route = self._routing.get(model) if isinstance(model, str) else None
        if route is None or not all(
            hasattr(self._providers.get(d.provider), "parse_training") for d in route.deployments
        ):
            return None
        return route

    async def _archive(self, name: Any, user: str | None) -> bytes | None:
        if not isinstance(name, str) or not name:
            raise MediaInvalidRequestError("'training_file' is required", param="training_file")
        if not name.startswith("file-"):
            return None  # a URL: the provider checks it
        record = await self._book.records.file(name)
        if record is None or (user is not None and record.owner != user):
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
        self._contract.fine_tuning(request)
        archive = await self._archive(request.get("training_file"), user)
        first = route.deployments[0]
        provider = self._providers[first.provider]
        with translated(first.provider, self._redactor, before_call=True):
            parsed = provider.parse_training(request, archive)  # type: ignore[attr-defined]
        jobs: dict[str, Any] = {}

        async def call(deployment: Deployment, key: str) -> str:
            plugin: Any = self._providers[deployment.provider]
            job = jobs.setdefault(deployment.model, plugin.new_job())
            with translated(deployment.provider, self._redactor):
                request_id: str = await plugin.submit_training(
                    job,
                    parsed,
                    model=deployment.model,
                    api_base=_base(deployment),
                    key=key,
                    webhook_url=self._settings.webhooks.callback_url,
                )
            return request_id

        outcome = await self._resilience.run(route, user, call)
        deployment = outcome.deployment
        plugin: Any = self._providers[deployment.provider]
        provider_job = jobs[deployment.model]
        record = StoredJob(
            id=new_id("ftjob-"),
            kind=KIND,
            owner=user,
            task=route.task,
            provider=deployment.provider,
            model=deployment.model,
            status="queued",
            inputs={
                "training_file": str(request.get("training_file")),
                "metadata": dict(request.get("metadata") or {}),
                "hyperparameters": dict(request.get("hyperparameters") or {}),
            },
            cost_usd=self._cost(deployment, plugin.training_steps(parsed)),
            request_id=outcome.value,
            handle=plugin.job_handle(provider_job),
        )
        self._book.remember(record.id, provider_job)
        await self._book.records.add_job(
            record,
            [
                ("info", "Job created", None),
                ("info", f"Submitted to {deployment.provider} as request {outcome.value}", None),
            ],
        )
        self._log.info("training_job_created", job=record.id, model=deployment.model)
        # Who served the create and how, as the other routes' answers say it.
        served = [
            (b"x-gateway-model", deployment.model.encode()),
            (b"x-gateway-attempts", str(outcome.total_attempts).encode()),
            (b"x-gateway-fallback", b"true" if outcome.fallback else b"false"),
        ]
        await self._answer(send, record, served)
        return True

    async def _refresh(self, job: StoredJob) -> StoredJob:
        return await self._book.refresh(
            job, apply_status, finished=job.status in TERMINAL or not self.polled
        )

    async def _list(self, scope: Scope, receive: Receive, send: Send, user: str | None) -> bool:
        query = Request(scope).query_params
        page, more = await self._book.records.jobs(
            KIND, owner=user, after=query.get("after"), limit=_limit(query.get("limit"))
        )
        views = [training_view(await self._refresh(job)) for job in page]
        body = {"object": "list", "data": views, "has_more": more}
        await send_json(send, 200, orjson.dumps(body), [])
        return True

    async def _job(self, scope: Scope, receive: Receive, send: Send, user: str | None) -> bool:
        job_id, action = scope["gateway_job"]
        job = await self._book.visible(job_id, user)
        if job is None:
            raise NotFoundError(f"no fine-tuning job {job_id!r}", status_code=404)
        job = await self._refresh(job)
        if action == "/cancel":
            job = await self._cancel(job)
        if action == "/events":
            query = Request(scope).query_params
            after = query.get("after")
            seq = after.rsplit("-", 1)[-1] if after else None
            events, more = await self._book.records.events(
                job.id,
                after=int(seq) if seq is not None and seq.isdigit() else None,
                limit=_limit(query.get("limit")),
            )
            data = [event_view(job.id, event) for event in events]  # newest first, as OpenAI
            body = {"object": "list", "data": data, "has_more": more}
            await send_json(send, 200, orjson.dumps(body), [])
            return True
        await self._answer(send, job)
        return True

    async def _cancel(self, job: StoredJob) -> StoredJob:
        if job.status in TERMINAL:
            raise InvalidRequestError(
                f"job {job.id} has already {job.status}; only a queued or running job can be"
                " cancelled"
            )
        with contextlib.suppress(ExternalServiceError):
            await self._book.call(job, lambda plugin, provider_job: plugin.cancel(provider_job))
        events = _finish(job, "cancelled")
        if not await self._book.records.save(job, events):
            return await self._book.records.job(job.id) or job
        return job

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
        job = await self._book.records.by_request(provider, callback.request_id)
        if not duplicate and job is not None and job.status not in TERMINAL:
            events: list[Event] = [("info", f"Callback received from {provider}", None)]
            try:
                lora = plugin.callback_lora(callback)
                job.result = {"fine_tuned_model": lora}
                job.status, job.finished_at = "succeeded", time.time()
                events.append(("info", f"Job succeeded: fine-tuned model {lora}", None))
            except Exception as exc:
                if not is_plugin_error(exc):
                    raise
                message = self._redactor.scrub(str(exc))
                if "cancel" in message.lower():
                    events += _finish(job, "cancelled")
                else:
                    events += fail(job, message, code="training_failed")
            await self._book.records.save(job, events)
        self._callbacks[callback.request_id] = None
        while len(self._callbacks) > _SEEN_CALLBACKS:
            self._callbacks.popitem(last=False)
        body_out = {"ok": True, "duplicate": duplicate, "known": job is not None}
        await send_json(send, 200, orjson.dumps(body_out), [])

    def _cost(self, deployment: Deployment, steps: int) -> float | None:
        price = self._settings.prices.get(deployment.model)
        cost = priced(price.per_1000_steps, steps / 1000) if price is not None else None
        # The job's cost is this request's, for the metrics (its header is the job's own).
        record_cost(cost)
        return cost

    async def _answer(
        self, send: Send, job: StoredJob, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = [(b"x-gateway-provider", job.provider.encode()), *(extra or ())]
        if job.cost_usd is not None:
            headers.append((b"x-gateway-cost-usd", f"{job.cost_usd:.6f}".encode()))
        await send_json(send, 200, orjson.dumps(training_view(job)), headers)


def _base(deployment: Deployment) -> str | None:
    value = deployment.params.get("api_base")
    return value if isinstance(value, str) else None


def _limit(value: str | None) -> int:
    return int(value) if value and value.isdigit() else _PAGE
