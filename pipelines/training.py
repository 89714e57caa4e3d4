"""LoRA training as a Kafka request kind: training images in, a LoRA image generation accepts out.

Why a handler of its own: training runs for minutes at the provider, so the handler uploads the
images once (`POST /v1/files`, purpose fine-tune), creates one fine-tuning job on the task
(`POST /v1/fine_tuning/jobs`), then only looks the job and its events up until it ends,
publishing the queue position, the provider's new log lines and the percent trained on the
status topic. The LoRA in the result (`fine_tuned_model`) is what an image generation request
takes as a LoRA path. When the event's deadline (or `max_wait_s`) passes first, the job is
cancelled and the request fails with `JobTimedOut`; a job the provider fails gives `JobFailed`
with the provider's reason. A redelivered event resumes its job when this process created it
(`pipelines._jobs.JobMemory`; another process would create a second job).

    gateway_settings:
      kafka:
        handlers:
          - factory: pipelines.training:LoraTraining
            tasks: [lora-training]
            options: {poll_interval_s: 5, allowed_roots: [/data/looks]}
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.kinds import EventKind, kinds_schema
from pipelines._errors import InputRefused, JobCancelled, JobFailed
from pipelines._jobs import CANCEL_S, JobMemory, JobOptions, run_job
from pipelines._media import MediaHandler
from pipelines._proxy_http import Served, served_from
from pipelines._refs import MediaRef
from pipelines._training_inputs import check_archive_async, zip_async
from schemas import Failed, Request, Result

__all__ = [
    "DEFAULT_TASK",
    "LORA_TRAINING",
    "LoraTraining",
    "LoraTrainingOptions",
    "TrainedLora",
    "TrainingFailed",
    "TrainingRequested",
    "TrainingSucceeded",
    "event_schemas",
]

DEFAULT_TASK = "lora-training"
_ZIP_TYPES = ("application/zip", "application/x-zip-compressed")
_JOBS = "/v1/fine_tuning/jobs"
_EVENT_PAGE = 100


class TrainingRequested(Request, frozen=True, kw_only=True, tag="lora.training.requested"):
    """Train a LoRA on `images`: single images, or one zip of them as the only entry."""

    task: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = DEFAULT_TASK
    images: Annotated[list[MediaRef], msgspec.Meta(min_length=1, max_length=500)]
    # The word prompts use to call up what was trained ("a photo of sks jacket").
    trigger_word: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    steps: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    # A style (a look, a lighting) rather than a subject (one garment, one person).
    is_style: bool = False


class TrainedLora(msgspec.Struct, frozen=True, kw_only=True):
    """A training handler's answer; it becomes a TrainingSucceeded result."""

    # The LoRA as image generation takes it (`loras: [{path: <lora>}]`).
    lora: str
    job_id: str
    steps: int
    images: int
    trigger_word: str
    served: Served


class TrainingSucceeded(Result, frozen=True, kw_only=True, tag="lora.training.succeeded"):
    lora: str
    job_id: str
    # Steps trained, and the training images the archive held.
    steps: Annotated[int, msgspec.Meta(ge=1)]
    images: Annotated[int, msgspec.Meta(ge=1)]
    trigger_word: str
    served: Served
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class TrainingFailed(Failed, frozen=True, kw_only=True, tag="lora.training.failed"):
    """`error.type`: JobFailed (the provider's reason), JobCancelled, JobTimedOut, or the
    input's refusal (InputRefused, ImageUndecodable, InputNotFound...)."""


LORA_TRAINING: EventKind[TrainingRequested, TrainedLora] = EventKind(
    request=TrainingRequested,
    payload=TrainedLora,
    succeeded=TrainingSucceeded,
    failed=TrainingFailed,
)


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the training kind's events (`consumers.kinds.kinds_schema`)."""
    return kinds_schema([LORA_TRAINING])


class LoraTrainingOptions(JobOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The training handler's options (`JobOptions` plus the training images' limits)."""

    # A training takes far longer than a clip: three hours rather than `JobOptions`' one.
    max_wait_s: Annotated[float, msgspec.Meta(gt=0)] = 3 * 3600.0
    # The provider trains on one image; a handful make a usable LoRA.
    min_images: Annotated[int, msgspec.Meta(ge=1)] = 1
    max_images: Annotated[int, msgspec.Meta(ge=1)] = 500
    max_archive_bytes: Annotated[int, msgspec.Meta(gt=0)] = 1 << 30


class _Started(msgspec.Struct, frozen=True):
    job_id: str
    served: Served
    images: int


class _Seen:
    """What progress events already told: the newest job event, the position and percent."""

    def __init__(self) -> None:
        self.seq = -1
        self.position: int | None = None
        self.percent = 0
        self.status = ""


class LoraTraining(MediaHandler):
    """Trains LoRAs through the proxy's fine-tuning routes, one job per request."""

    kind = LORA_TRAINING

    def __init__(
        self,
        options: LoraTrainingOptions,
        resources: HandlerResources,
    ) -> None:
        super().__init__(options, resources)
        self._training = options
        self._jobs: JobMemory[_Started] = JobMemory()

    async def handle(self, event: TrainingRequested, ctx: HandlerContext) -> TrainedLora:
        seen = _Seen()

        async def finish(started: _Started, job: dict[str, Any]) -> TrainedLora:
            return TrainedLora(
                lora=str(job["fine_tuned_model"]),
                job_id=started.job_id,
                steps=event.steps,
                images=started.images,
                trigger_word=event.trigger_word,
                served=started.served,
            )

        return await run_job(
            event,
            self._jobs,
            self._training,
            start=lambda: self._start(event, ctx),
            look=lambda started: self._look(event, ctx, started.job_id, seen),
            cancel=lambda started: self._cancel(event, ctx, started.job_id),
            finish=finish,
            timed_out="the deadline passed while training job {job_id} ran; it was cancelled",
        )

    async def _archive(self, event: TrainingRequested) -> tuple[bytes, int]:
        options, resolver = self._training, self._artifacts.resolver
        accept = ["image/*", *_ZIP_TYPES]
        images: list[bytes] = []
        archive: bytes | None = None
        for index, ref in enumerate(event.images):
            media = await resolver.resolve(ref, accept=accept, noun=f"training image {index}")
            if media.content_type.split(";", 1)[0].strip().lower() not in _ZIP_TYPES:
                images.append(media.data)
            elif len(event.images) == 1:
                archive = media.data
            else:
                raise InputRefused(f"training image {index} is a zip: a zip must be the only entry")
        if archive is None:
            if len(images) < options.min_images:
                raise InputRefused(
                    f"{len(images)} training images; at least {options.min_images} are needed"
                )
            archive = await zip_async(images)
        data = archive
        count = await check_archive_async(
            data,
            min_images=options.min_images,
            max_images=options.max_images,
            max_bytes=options.max_archive_bytes,
        )
        return data, count

    async def _start(self, event: TrainingRequested, ctx: HandlerContext) -> _Started:
        await ctx.report_progress("preparing", 0.0, "reading the training images")
        archive, count = await self._archive(event)
        uploaded = await self._proxy.call(
            "POST",
            "/v1/files",
            event,
            ctx,
            data={"purpose": "fine-tune"},
            files={"file": ("training.zip", archive, "application/zip")},
        )
        file_id = str(uploaded.json()["id"])
        await ctx.report_progress("uploaded", 0.02, f"{count} images uploaded as {file_id}")
        body = {
            "model": event.task,
            "training_file": file_id,
            # OpenAI's metadata holds strings only; the event id makes the job traceable.
            "metadata": {
                "trigger_word": event.trigger_word,
                "steps": str(event.steps),
                "is_style": "true" if event.is_style else "false",
                "event_id": event.event_id,
            },
        }
        created = await self._proxy.call("POST", _JOBS, event, ctx, json=body)
        job = created.json()
        served = served_from(
            created,
            provider=str(job.get("provider") or self.provider),
            model=str(job.get("provider_model") or event.task),
        )
        return _Started(job_id=str(job["id"]), served=served, images=count)

    async def _look(
        self, event: TrainingRequested, ctx: HandlerContext, job_id: str, seen: _Seen
    ) -> dict[str, Any] | None:
        """One look-up: progress published when anything changed; the job once it ended."""
        job = (await self._proxy.call("GET", f"{_JOBS}/{job_id}", event, ctx)).json()
        logs, percent = await self._new_events(event, ctx, job_id, seen)
        status = str(job.get("status"))
        if status == "succeeded":
            percent = 100
        position = job.get("queue_position") if status == "queued" else None
        if logs or position != seen.position or percent != seen.percent or status != seen.status:
            seen.position, seen.percent, seen.status = position, percent, status
            await ctx.report_progress(
                status,
                0.05 + 0.9 * percent / 100,
                f"{percent}% trained" if status == "running" else f"job {job_id} {status}",
                queue_position=position if isinstance(position, int) else None,
                logs=logs,
            )
        if status == "succeeded":
            return dict(job)
        if status == "failed":
            error = job.get("error") or {}
            raise JobFailed(f"training job {job_id} failed: {error.get('message') or 'no reason'}")
        if status == "cancelled":
            raise JobCancelled(f"training job {job_id} was cancelled at the provider")
        return None

    async def _new_events(
        self, event: TrainingRequested, ctx: HandlerContext, job_id: str, seen: _Seen
    ) -> tuple[list[str], int]:
        """The job's events newer than the last seen (oldest first) and the percent trained."""
        fresh: list[tuple[int, str, dict[str, Any]]] = []
        after: str | None = None
        while True:
            params = f"?limit={_EVENT_PAGE}" + (f"&after={after}" if after else "")
            path = f"{_JOBS}/{job_id}/events{params}"
            page = (await self._proxy.call("GET", path, event, ctx)).json()
            data = page.get("data") or []
            older = False
            for item in data:  # newest first
                seq = _seq(str(item.get("id", "")))
                if seq <= seen.seq:
                    older = True
                    break
                fresh.append((seq, str(item.get("message", "")), item.get("data") or {}))
            if older or not page.get("has_more") or not data:
                break
            after = str(data[-1]["id"])
        fresh.sort()
        if fresh:
            seen.seq = fresh[-1][0]
        percent = seen.percent
        for _, _, metrics in fresh:
            total = metrics.get("total_steps")
            step = metrics.get("step")
            if isinstance(total, int) and total > 0 and isinstance(step, int):
                percent = max(percent, min(99, step * 100 // total))
        return [message for _, message, _ in fresh], percent

    async def _cancel(self, event: TrainingRequested, ctx: HandlerContext, job_id: str) -> None:
        """Cancel the job on a budget of its own (the event's has passed); a job that ended
        meanwhile answers 400, which changes nothing."""
        unbounded = msgspec.structs.replace(event, deadline=None)
        await self._proxy.call(
            "POST", f"{_JOBS}/{job_id}/cancel", unbounded, ctx, timeout_s=CANCEL_S
        )


_SEQ = re.compile(r"-(\d+)$")


def _seq(event_id: str) -> int:
    match = _SEQ.search(event_id)
    return int(match[1]) if match else -1
