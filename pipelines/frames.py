"""Frames sampled from a video as JPEG images sized for the provider that will see them.

Why here and not in the handler: sampling is the part that decides cost and quality (each frame
is an image the provider bills), so it is a pure function of the video and a `SamplingPolicy`,
tested on real videos. Decoding is sequential and keeps only the chosen frames: a long video
never sits in memory. It runs in a worker thread (`sample_frames_async`) because PyAV decodes
synchronously and would otherwise stall the consumer's event loop.

Uniform sampling is the seeds' `np.linspace(0, total - 1, n, dtype=int)` (16 of 300 frames:
0, 19, 39, ..., 299). Adaptive sampling takes one frame per `adaptive_interval_s` seconds of
video, at least one and at most `max_frames`, spread uniformly: a 6 s clip gets 3 frames at the
default 2 s, a 5 min one gets `max_frames`. Frames are never upscaled: a source narrower than
the policy's width keeps its own width (a bigger image adds cost, not detail).
"""

from __future__ import annotations

import asyncio
import io
import math
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import av
import msgspec
import numpy as np
from PIL import Image

from pipelines._errors import NoFrames, VideoUndecodable

__all__ = [
    "Frames",
    "SamplingPolicy",
    "frame_indices",
    "sample_frames",
    "sample_frames_async",
    "uniform_indices",
]

VideoSource = bytes | Path


class SamplingPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How many frames a provider gets, how they are chosen, and at which JPEG width."""

    max_frames: Annotated[int, msgspec.Meta(ge=1, le=100)]
    strategy: Literal["uniform", "adaptive"] = "uniform"
    width: Annotated[int, msgspec.Meta(ge=16, le=8192)]
    jpeg_quality: Annotated[int, msgspec.Meta(ge=1, le=95)] = 85
    # Adaptive only: seconds of video per frame before `max_frames` caps the count.
    adaptive_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0


class Frames(msgspec.Struct, frozen=True, kw_only=True):
    """The sampled frames (JPEG bytes, in video order) and what they were taken from."""

    images: list[bytes]
    indices: list[int]
    total_frames: int
    duration_s: float
    # The source's size; each image is at most the policy's width, aspect kept.
    source_width: int
    source_height: int


def uniform_indices(total: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `total` frames, first and last included."""
    if total <= 0:
        return []
    picked = np.linspace(0, total - 1, min(count, total), dtype=int)
    return [int(i) for i in picked]


def frame_indices(total: int, duration_s: float, policy: SamplingPolicy) -> list[int]:
    """The indices `policy` picks from a video of `total` frames lasting `duration_s`."""
    count = policy.max_frames
    if policy.strategy == "adaptive":
        wanted = math.ceil(duration_s / policy.adaptive_interval_s) if duration_s > 0 else 1
        count = max(1, min(policy.max_frames, wanted))
    return uniform_indices(total, count)


def _open(source: VideoSource) -> Any:
    target: Any = str(source) if isinstance(source, Path) else io.BytesIO(source)
    try:
        return av.open(target, mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise VideoUndecodable(f"not a decodable video: {type(exc).__name__}") from exc


def _probe(source: VideoSource) -> tuple[int, float]:
    """Frame count and duration; frames counted from packets when the header has no count."""
    with _open(source) as container:
        if not container.streams.video:
            raise VideoUndecodable("the file holds no video stream")
        stream = container.streams.video[0]
        total = int(stream.frames or 0)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if total <= 0:
            try:
                # Demuxing without decoding: cheap, and nothing kept.
                total = sum(1 for packet in container.demux(stream) if packet.size)
            except av.FFmpegError as exc:
                raise VideoUndecodable(f"cannot read the video: {type(exc).__name__}") from exc
        if duration <= 0 and total > 0 and stream.average_rate:
            duration = float(Fraction(total) / stream.average_rate)
    if total <= 0:
        raise NoFrames("the video has no frames")
    return total, duration


def _jpeg(image: Image.Image, width: int, quality: int) -> bytes:
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def sample_frames(source: VideoSource, policy: SamplingPolicy) -> Frames:
    """Decode `source` (bytes or a file path) once and return the frames `policy` picks.

    Raises VideoUndecodable for anything PyAV cannot decode, NoFrames for an empty stream.
    """
    total, duration = _probe(source)
    wanted = frame_indices(total, duration, policy)
    targets = set(wanted)
    images: list[bytes] = []
    indices: list[int] = []
    size = (0, 0)
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index in targets:
                    image = frame.to_image()
                    size = image.size
                    images.append(_jpeg(image, policy.width, policy.jpeg_quality))
                    indices.append(index)
                if index >= wanted[-1]:
                    break
        except av.FFmpegError as exc:
            raise VideoUndecodable(f"cannot decode the video: {type(exc).__name__}") from exc
    if not images:
        raise NoFrames("the video decoded to no frames")
    return Frames(
        images=images,
        indices=indices,
        total_frames=total,
        duration_s=duration,
        source_width=size[0],
        source_height=size[1],
    )


async def sample_frames_async(source: VideoSource, policy: SamplingPolicy) -> Frames:
    """`sample_frames` in a worker thread, so decoding never blocks the event loop."""
    return await asyncio.to_thread(sample_frames, source, policy)
