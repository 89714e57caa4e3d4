"""Video generation from a still as a Kafka request kind: an image and a prompt in, an MP4 out.

Why a handler of its own: a clip takes minutes at the provider, so the handler creates one
video job on the task (`POST /v1/videos`, the still as `input_reference`), looks it up until
it ends (publishing its queue position and percent on the status topic), downloads the
content, checks it decodes (PyAV: duration, width, height) and stores it as an artifact: a
video never travels inside a Kafka record. When the event's deadline (or `max_wait_s`)
passes first, the video is deleted at the proxy, which cancels it at the provider, and the
request fails with `JobTimedOut`. A redelivered event resumes its video when this process
created it (`pipelines._jobs.JobMemory`).

    gateway_settings:
      kafka:
        handlers:
          - factory: pipelines.videos:VideoGeneration
            tasks: [video-generation]
            options: {poll_interval_s: 5}
"""

from __future__ import annotations

import asyncio
import io
from typing import Annotated, Any

import av
import msgspec
from PIL import Image, UnidentifiedImageError

from artifacts.links import OutputArtifact
from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.kinds import EventKind, kinds_schema
from pipelines._errors import ImageUndecodable, JobFailed, VideoUndecodable
from pipelines._jobs import CANCEL_S, JobMemory, JobOptions, run_job
from pipelines._media import MediaHandler
from pipelines._proxy_http import Served, served_from
from pipelines._refs import MediaRef
from schemas import Failed, Request, Result

__all__ = [
    "DEFAULT_TASK",
    "VIDEO_GENERATION",
    "GeneratedVideo",
    "VideoGeneration",
    "VideoGenerationFailed",
    "VideoGenerationOptions",
    "VideoGenerationRequested",
    "VideoGenerationSucceeded",
    "event_schemas",
    "probe_video",
]

DEFAULT_TASK = "video-generation"
_VIDEOS = "/v1/videos"


class VideoGenerationRequested(
    Request, frozen=True, kw_only=True, tag="video.generation.requested"
):
    """Animate one still: the image by reference, what should happen in `prompt`."""

    task: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = DEFAULT_TASK
    image: MediaRef
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=2500)]
    # Wanted length; each model serves its nearest duration (the result says what it served).
    seconds: Annotated[int, msgspec.Meta(ge=1, le=60)] | None = None
    # "1280x720", "720x1280"... (None: the still's own shape).
    size: Annotated[str, msgspec.Meta(pattern=r"^\d{2,5}x\d{2,5}$")] | None = None


class GeneratedVideo(msgspec.Struct, frozen=True, kw_only=True):
    """A video handler's answer; it becomes a VideoGenerationSucceeded result."""

    video: OutputArtifact
    job_id: str
    duration_s: float
    width: int
    height: int
    served: Served


class VideoGenerationSucceeded(Result, frozen=True, kw_only=True, tag="video.generation.succeeded"):
    video: OutputArtifact
    job_id: str
    # What PyAV read from the stored file.
    duration_s: Annotated[float, msgspec.Meta(gt=0)]
    width: Annotated[int, msgspec.Meta(ge=1)]
    height: Annotated[int, msgspec.Meta(ge=1)]
    served: Served
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class VideoGenerationFailed(Failed, frozen=True, kw_only=True, tag="video.generation.failed"):
    """`error.type`: JobFailed (the provider's reason), JobTimedOut, VideoUndecodable (what
    came back is no video), or the input's refusal (ImageUndecodable, InputNotFound...)."""


VIDEO_GENERATION: EventKind[VideoGenerationRequested, GeneratedVideo] = EventKind(
    request=VideoGenerationRequested,
    payload=GeneratedVideo,
    succeeded=VideoGenerationSucceeded,
    failed=VideoGenerationFailed,
)


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the video kind's events (`consumers.kinds.kinds_schema`)."""
    return kinds_schema([VIDEO_GENERATION])


class VideoGenerationOptions(JobOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The video handler's options (`JobOptions`: the media ones plus the wait)."""


class _Started(msgspec.Struct, frozen=True):
    job_id: str
    served: Served


def probe_video(data: bytes) -> tuple[float, int, int]:
    """Duration (s), width and height of an MP4, every frame decoded; VideoUndecodable when
    it is no video or holds no frame."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise VideoUndecodable("the provider's video has no video stream")
            stream = container.streams.video[0]
            frames, last, width, height = 0, 0.0, 0, 0
            for frame in container.decode(stream):
                frames += 1
                width, height = frame.width, frame.height
                if frame.time is not None:
                    last = max(last, float(frame.time))
            rate = float(stream.average_rate or 0) or None
    except av.FFmpegError as exc:
        raise VideoUndecodable("the provider's video does not decode") from exc
    if frames == 0:
        raise VideoUndecodable("the provider's video holds no frame")
    base = stream.time_base
    duration = float(stream.duration * base) if stream.duration and base else 0.0
    if duration <= 0:
        duration = last + (1 / rate if rate else 0.0)
    return duration, width, height


def _still_format(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return str(image.format or "PNG").lower()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageUndecodable("the still is not an image that decodes") from exc


class VideoGeneration(MediaHandler):
    """Turns stills into clips through the proxy's `/v1/videos`, one video per request."""

    kind = VIDEO_GENERATION

    def __init__(
        self,
        options: VideoGenerationOptions,
        resources: HandlerResources,
    ) -> None:
        super().__init__(options, resources)
        self._video = options
        self._jobs: JobMemory[_Started] = JobMemory()

    async def handle(self, event: VideoGenerationRequested, ctx: HandlerContext) -> GeneratedVideo:
        last: list[tuple[str, int, Any]] = []
        video = await run_job(
            event,
            self._jobs,
            self._video,
            start=lambda: self._start(event, ctx),
            look=lambda started: self._look(event, ctx, started.job_id, last),
            cancel=lambda started: self._cancel(event, ctx, started.job_id),
            finish=lambda started, _: self._stored(event, ctx, started),
            timed_out="the deadline passed while video {job_id} was made; it was cancelled",
        )
        await ctx.report_progress(
            "stored", 1.0, f"{video.duration_s:.1f} s, {video.width}x{video.height}"
        )
        return video

    async def _stored(
        self, event: VideoGenerationRequested, ctx: HandlerContext, started: _Started
    ) -> GeneratedVideo:
        """The ended video downloaded, checked to decode, and kept as an artifact."""
        content = await self._proxy.call("GET", f"{_VIDEOS}/{started.job_id}/content", event, ctx)
        data = content.content
        duration, width, height = await asyncio.to_thread(probe_video, data)
        artifact = await self._artifacts.keep(data, "video/mp4")
        return GeneratedVideo(
            video=artifact,
            job_id=started.job_id,
            duration_s=duration,
            width=width,
            height=height,
            served=started.served,
        )

    async def _start(self, event: VideoGenerationRequested, ctx: HandlerContext) -> _Started:
        await ctx.report_progress("preparing", 0.0, "reading the still")
        still = await self._artifacts.resolver.resolve(
            event.image, accept=["image/*"], noun="still"
        )
        kind = await asyncio.to_thread(_still_format, still.data)
        fields = {"model": event.task, "prompt": event.prompt}
        if event.seconds is not None:
            fields["seconds"] = str(event.seconds)
        if event.size is not None:
            fields["size"] = event.size
        created = await self._proxy.call(
            "POST",
            _VIDEOS,
            event,
            ctx,
            data=fields,
            files={"input_reference": (f"still.{kind}", still.data, still.content_type)},
        )
        video = created.json()
        served = served_from(
            created,
            provider=str(video.get("provider") or self.provider),
            model=str(video.get("provider_model") or event.task),
        )
        return _Started(job_id=str(video["id"]), served=served)

    async def _look(
        self,
        event: VideoGenerationRequested,
        ctx: HandlerContext,
        job_id: str,
        last: list[tuple[str, int, Any]],
    ) -> dict[str, Any] | None:
        """One look-up: progress published when it changed; the video once it completed."""
        video = (await self._proxy.call("GET", f"{_VIDEOS}/{job_id}", event, ctx)).json()
        status = str(video.get("status"))
        percent = int(video.get("progress") or 0)
        position = video.get("queue_position") if status == "queued" else None
        mark = (status, percent, position)
        if not last or last[-1] != mark:
            last[:] = [mark]
            await ctx.report_progress(
                status,
                0.05 + 0.85 * percent / 100,
                f"{percent}% made" if status == "in_progress" else f"video {job_id} {status}",
                queue_position=position if isinstance(position, int) else None,
            )
        if status == "completed":
            return dict(video)
        if status == "failed":
            error = video.get("error") or {}
            raise JobFailed(f"video {job_id} failed: {error.get('message') or 'no reason'}")
        return None

    async def _cancel(
        self, event: VideoGenerationRequested, ctx: HandlerContext, job_id: str
    ) -> None:
        """Delete (and so cancel) the video on a budget of its own: the event's has passed."""
        unbounded = msgspec.structs.replace(event, deadline=None)
        await self._proxy.call("DELETE", f"{_VIDEOS}/{job_id}", unbounded, ctx, timeout_s=CANCEL_S)
