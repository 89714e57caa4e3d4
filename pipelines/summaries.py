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

References: an absolute `path` under one of `allowed_roots` (checked before and after
resolving symlinks), an `artifact_id` in the store under `artifacts_root`, or an http(s) `url`
fetched through the guarded fetcher (both from the `artifacts` package, imported on first use).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import msgspec

from consumers.handler_config import HandlerResources
from consumers.handlers import HandlerContext
from consumers.kinds import EventKind
from consumers.proxy_handler import ProxyCompletionHandler
from core.config import ConfigError
from pipelines._errors import NoSamplingPolicy, PipelineError, VideoNotFound, VideoRefused
from pipelines._policy import SummaryConfig, load_summary_config
from pipelines._proxied import Proxied
from pipelines.frames import Frames, VideoSource, sample_frames_async
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


DEFAULT_TASK = "video-summarization"


class VideoRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where the video is: exactly one of a file path, an artifact id or an http(s) URL."""

    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    artifact_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=4096)] | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.path, self.artifact_id, self.url)) != 1:
            raise ValueError("a video reference needs exactly one of path, artifact_id, url")


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


class SummaryFailed(Failed, frozen=True, kw_only=True, tag="video.summary.failed"):
    pass


VIDEO_SUMMARY: EventKind[SummaryRequested, Summary] = EventKind(
    request=SummaryRequested, payload=Summary, succeeded=SummarySucceeded, failed=SummaryFailed
)


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the summary kind's events: a `oneOf` per family over `$defs`, in the
    shape of `schemas.jsonschema`'s document, so it can be published beside it."""
    results: Any = SummarySucceeded | SummaryFailed
    found, components = msgspec.json.schema_components(
        [SummaryRequested, results], ref_template="#/$defs/{name}"
    )
    return {
        "properties": dict(zip(("requests", "results"), found, strict=True)),
        "$defs": dict(sorted(components.items())),
    }


class VideoSummariesOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The handler's options: where routing and sampling come from, what it may read."""

    # The litellm_config.yaml whose model_list routes the task (and holds the sampling).
    config: str
    allowed_roots: list[str] = msgspec.field(default_factory=list)
    artifacts_root: str | None = None
    # What the guarded fetcher may fetch from (handed to `artifacts.GuardedFetcher(allow=)`).
    fetch_allow: list[str] = msgspec.field(default_factory=list)
    # Largest video a URL may deliver; None: the fetcher's own default.
    fetch_max_bytes: Annotated[int, msgspec.Meta(gt=0)] | None = None
    # Overrides of gateway_settings.kafka.proxy, as for the chat-completion handler.
    url: str | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    provider: str | None = None


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def resolve_path(raw: str, roots: list[Path]) -> Path:
    """The real file `raw` names, refused unless it and its resolved target (symlinks
    followed) lie under one of `roots` (themselves resolved)."""
    if not raw.startswith("/"):
        raise VideoRefused("video paths must be absolute")
    # Lexical check first: a path outside the roots is refused without touching the disk,
    # so the refusal says nothing about what exists there.
    if not _under(Path(os.path.normpath(raw)), roots):
        raise VideoRefused("the video path is outside the allowed roots")
    try:
        real = Path(raw).resolve(strict=True)
    except FileNotFoundError as exc:
        raise VideoNotFound("no video at the given path") from exc
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission error
        raise VideoRefused(f"the video path cannot be resolved: {type(exc).__name__}") from exc
    if not _under(real, roots):
        raise VideoRefused("the video path leads outside the allowed roots")
    if not real.is_file():
        raise VideoRefused("the video path is not a regular file")
    return real


async def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await `func` when it is async, else run it in a thread (it may do blocking I/O)."""
    if inspect.iscoroutinefunction(func):
        return await func(*args, **kwargs)
    return await asyncio.to_thread(func, *args, **kwargs)


class VideoSummaries(Proxied):
    """Summarises videos through the proxy's task, frames sampled per its serving provider."""

    kind = VIDEO_SUMMARY

    def __init__(
        self,
        options: VideoSummariesOptions,
        resources: HandlerResources,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Read at start-up, so a bad config or an unknown provider stops the process then.
        self._config: SummaryConfig = load_summary_config(options.config)
        if self._config.routing.get(DEFAULT_TASK) is not None:
            try:
                self._config.policy_for(DEFAULT_TASK)
            except NoSamplingPolicy as exc:
                raise ConfigError(str(exc)) from exc
        self._options = options
        self._roots = [Path(r).resolve() for r in options.allowed_roots]
        self._redactor = resources.redactor
        proxy = resources.settings.proxy
        self._proxy = ProxyCompletionHandler(
            (options.url or proxy.url),
            api_key=resources.proxy_api_key,
            timeout_s=options.timeout_s or proxy.timeout_s,
            provider=options.provider or proxy.provider,
            max_deliveries=proxy.max_deliveries,
            redactor=resources.redactor,
            transport=transport,
        )
        self._store: Any = None
        self._fetcher: Any = None

    async def handle(self, event: SummaryRequested, ctx: HandlerContext) -> Summary:
        serving = self._config.policy_for(event.task)
        await ctx.report_progress("resolving", 0.0, "locating the video")
        source = await self._source(event.video)
        policy = serving.policy
        await ctx.report_progress(
            "decoding", 0.1, f"sampling up to {policy.max_frames} frames for {serving.provider}"
        )
        frames = await sample_frames_async(source, policy)
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
            return resolve_path(ref.path, self._roots)
        with self._artifact_errors() as artifacts:
            if ref.artifact_id is not None:
                if self._store is None:
                    if self._options.artifacts_root is None:
                        raise VideoRefused("artifact references need options.artifacts_root")
                    self._store = artifacts.LocalArtifactStore(Path(self._options.artifacts_root))
                data = await _call(self._store.get, ref.artifact_id)
                return bytes(data)
            if self._fetcher is None:
                limit = self._options.fetch_max_bytes
                extra = {} if limit is None else {"max_bytes": limit}
                self._fetcher = artifacts.GuardedFetcher(allow=self._options.fetch_allow, **extra)
            data, _content_type = await _call(self._fetcher.fetch, ref.url, accept=["video/*"])
            return bytes(data)

    @contextmanager
    def _artifact_errors(self) -> Iterator[Any]:
        """The `artifacts` package, its missing-artifact and refused-fetch errors translated."""
        try:
            artifacts = importlib.import_module("artifacts")
        except ImportError as exc:
            raise PipelineError("artifact and URL references need the artifacts package") from exc
        try:
            yield artifacts
        except artifacts.ArtifactNotFound as exc:
            raise VideoNotFound("no such artifact") from exc
        except artifacts.FetchRefused as exc:
            # The fetcher's reason may quote the URL, and a URL may carry a token.
            raise VideoRefused(self._redactor.scrub(f"the video URL was refused: {exc}")) from exc
