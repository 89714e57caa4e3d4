"""Video summaries as a Kafka request kind: a video reference in, the provider's summary out.

Why a handler of its own: a summary is several steps (resolve the reference, decode and sample
frames for the provider that will see them, ask the proxy) with progress in between, and its
result carries what a chat completion does not (the frame count). The proxy call itself is the
consumers' `ProxyCompletionHandler`, so timeouts, priorities, the error mapping and the cost
and latency headers are the same as for every other task; the provider behind the task stays
a matter of litellm_config.yaml, and so does the sampling (`pipelines._policy`).

    gateway_settings:
      kafka:
        handlers:
          - factory: pipelines.summaries:VideoSummaries
            tasks: [video-summarization]
            options: {config: litellm_config.yaml, allowed_roots: [/data/videos]}

References (`pipelines._refs`): an absolute `path` under one of `allowed_roots` (checked
before and after resolving symlinks), an `artifact_id` in the store of
`gateway_settings.artifacts`, or an http(s) `url` fetched through the guarded fetcher. The
`artifacts_root` option, a local store directory of its own, is deprecated: it still replaces
that store when set.

Frames fit every deployment of the task's chain (`pipelines._policy` says why): the primary's
strategy and width, the smallest count any of its fallbacks takes, so the proxy can fall back
without refusing the request for its images. A `keyframes` policy runs the shot detector it
names in-process (`pipelines._shots`) and falls back to uniform frames, logged, without it:

    gateway_settings:
      summaries:
        sampling:
          gemini: {max_frames: 16, width: 1536, strategy: keyframes, detector: transnetv2}
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import msgspec
import structlog

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.kinds import EventKind, kinds_schema
from consumers.proxy_handler import ProxyCompletionHandler
from core.config import ConfigError
from pipelines import _refs
from pipelines._errors import NoSamplingPolicy, VideoNotFound, VideoRefused
from pipelines._media import MediaArtifacts, MediaOptions, config_of
from pipelines._policy import SummaryConfig, load_summary_config
from pipelines._proxied import Proxied
from pipelines._shots import ShotDetectors
from pipelines.frames import Frames, Strategy, VideoSource, sample_frames_async
from schemas import (
    ChatMessage,
    CompletionRequested,
    Failed,
    GatewayLatency,
    ImagePart,
    ImageURL,
    Request,
    Result,
    TextPart,
    Usage,
)

__all__ = [
    "DEFAULT_TASK",
    "VIDEO_SUMMARY",
    "Summary",
    "SummaryFailed",
    "SummaryRequested",
    "SummarySucceeded",
    "VideoRef",
    "VideoSummaries",
    "VideoSummariesOptions",
    "event_schemas",
    "resolve_path",
]

LOGGER = "gateway.pipelines"
DEFAULT_TASK = "video-summarization"
# What a video reference may resolve to: videos, and the generic type a store or server gives
# a file it knows nothing about (the decoder, not the label, decides what is a video).
_VIDEO_TYPES = ("video/*", "application/octet-stream")


class VideoRef(_refs.MediaRef, frozen=True, kw_only=True, omit_defaults=True):
    """Where the video is: exactly one of a file path, an artifact id or an http(s) URL."""


class SummaryRequested(Request, frozen=True, kw_only=True, tag="video.summary.requested"):
    """Summarise one video; the task's provider decides how its frames are sampled."""

    task: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = DEFAULT_TASK
    video: VideoRef
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    max_tokens: Annotated[int, msgspec.Meta(gt=0)] | None = None


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """A summary handler's answer; it becomes a SummarySucceeded result."""

    summary: str
    frames: int
    provider: str
    model: str
    usage: Usage | None = None
    cost_usd: float | None = None
    proxy_latency_ms: GatewayLatency | None = None
    fallback: bool = False
    provider_attempts: int = 1
    sampling: Strategy = "uniform"


class SummarySucceeded(Result, frozen=True, kw_only=True, tag="video.summary.succeeded"):
    summary: str
    # Frames sent to the provider (each one an image it bills).
    frames: Annotated[int, msgspec.Meta(ge=1)]
    provider: str
    model: str
    usage: Usage | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    cost_usd: Annotated[float, msgspec.Meta(ge=0)] | None = None
    proxy_latency_ms: GatewayLatency | None = None
    # A fallback deployment answered; provider calls the proxy made, retries included.
    fallback: bool = False
    provider_attempts: Annotated[int, msgspec.Meta(ge=1)] = 1
    # How the frames were chosen: uniform, adaptive, or keyframes (at detected shots).
    sampling: Strategy = "uniform"


class SummaryFailed(Failed, frozen=True, kw_only=True, tag="video.summary.failed"):
    pass


VIDEO_SUMMARY: EventKind[SummaryRequested, Summary] = EventKind(
    request=SummaryRequested, payload=Summary, succeeded=SummarySucceeded, failed=SummaryFailed
)


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the summary kind's events (`consumers.kinds.kinds_schema`)."""
    return kinds_schema([VIDEO_SUMMARY])


class VideoSummariesOptions(MediaOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The handler's options: the config that routes the task (and holds the sampling and the
    artifact store; None: the process's), what it may read, and overrides of
    `gateway_settings.kafka.proxy`."""

    # Deprecated: a local store directory for artifact references; gateway_settings.artifacts
    # names the store every handler shares.
    artifacts_root: str | None = None


def resolve_path(raw: str, roots: Sequence[Path]) -> Path:
    """The real video file `raw` names, refused (VideoRefused) unless it and its resolved
    target lie under one of `roots`; VideoNotFound when there is none."""
    return _refs.resolve_path(raw, roots, refused=VideoRefused, not_found=VideoNotFound)


def _artifacts(options: VideoSummariesOptions, resources: HandlerResources) -> MediaArtifacts:
    artifacts = MediaArtifacts.from_options(options, resources)
    if options.artifacts_root is None:
        return artifacts
    structlog.get_logger(LOGGER).warning(
        "option_deprecated", option="artifacts_root", use="gateway_settings.artifacts"
    )
    local = msgspec.structs.replace(
        artifacts.settings, backend="local", root=str(Path(options.artifacts_root).resolve())
    )
    return MediaArtifacts(local, options, resources)


class VideoSummaries(Proxied[ProxyCompletionHandler]):
    """Summarises videos through the proxy's task, frames sampled per its serving provider."""

    kind = VIDEO_SUMMARY

    def __init__(
        self,
        options: VideoSummariesOptions,
        resources: HandlerResources,
    ) -> None:
        # Read at start-up, so a bad config or an unknown provider stops the process then.
        config = config_of(options, resources)
        self._config: SummaryConfig = load_summary_config(config, environ=resources.environ)
        if self._config.routing.get(DEFAULT_TASK) is not None:
            try:
                self._config.policy_for(DEFAULT_TASK)
            except NoSamplingPolicy as exc:
                raise ConfigError(str(exc)) from exc
        self._options = options
        self._roots = [Path(r).resolve() for r in options.allowed_roots]
        self._artifacts = _artifacts(options, resources)
        self._shots = ShotDetectors(config, needed=self._config.uses_keyframes)
        self._proxy = ProxyCompletionHandler.from_settings(
            resources.settings.proxy,
            api_key=resources.proxy_api_key,
            redactor=resources.redactor,
            url=options.url,
            timeout_s=options.timeout_s,
            provider=options.provider,
        )

    async def stop(self) -> None:
        await super().stop()
        await self._shots.stop()

    async def handle(self, event: SummaryRequested, ctx: HandlerContext) -> Summary:
        serving = self._config.policy_for(event.task)
        await ctx.report_progress("resolving", 0.0, "locating the video")
        source = await self._source(event.video)
        policy = serving.policy
        detect = await self._shots.detect_for(policy)
        await ctx.report_progress(
            "decoding", 0.1, f"sampling up to {policy.max_frames} frames for {serving.provider}"
        )
        frames = await sample_frames_async(source, policy, detect=detect)
        if detect is not None and frames.strategy != "keyframes":
            structlog.get_logger(LOGGER).info(
                "keyframes_skipped", reason="longer than max_detect_frames", using="uniform"
            )
        await ctx.report_progress(
            "calling", 0.5, f"{len(frames.images)} frames to {serving.provider}"
        )
        completion = await self._proxy.handle(self._completion(event, frames), ctx)
        return Summary(
            summary=completion.content or "",
            frames=len(frames.images),
            provider=completion.provider,
            model=completion.model,
            usage=completion.usage,
            cost_usd=completion.cost_usd,
            proxy_latency_ms=completion.proxy_latency_ms,
            fallback=completion.fallback,
            provider_attempts=completion.provider_attempts,
            sampling=frames.strategy,
        )

    @staticmethod
    def _completion(event: SummaryRequested, frames: Frames) -> CompletionRequested:
        parts: list[TextPart | ImagePart] = [TextPart(text=event.prompt)]
        for image in frames.images:
            url = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
            parts.append(ImagePart(image_url=ImageURL(url=url)))
        return CompletionRequested(
            event_id=event.event_id,
            subject=event.subject,
            task=event.task,
            deadline=event.deadline,
            priority=event.priority,
            messages=[ChatMessage(role="user", content=parts)],
            max_tokens=event.max_tokens,
        )

    async def _source(self, ref: VideoRef) -> VideoSource:
        if ref.path is not None:
            # A path goes to the decoder as a path: a long video is never read into memory.
            return resolve_path(ref.path, self._roots)
        media = await self._artifacts.resolver.resolve(
            ref, accept=_VIDEO_TYPES, noun="video", refused=VideoRefused, not_found=VideoNotFound
        )
        return media.data
