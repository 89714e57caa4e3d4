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

Keyframe sampling (the seeds' choice for Gemini when a shot detector is configured) decodes the
video twice: first every frame at the detector's tiny input size (48x27 for TransNetV2, about
4 KB a frame, so at most `max_detect_frames` of them are held), then only the chosen frames at
the policy's width. The detector is passed in (`Detect`), so this module stays free of any
model runtime. Shots are given frames by `keyframe_indices`: with at least as many shots as
`max_frames`, shots are thinned evenly (the seeds' linspace over shots) and each gives its
middle frame; with fewer, every shot gets one and the rest go to shots in proportion to their
length, spread uniformly within each shot, so no chosen frame sits on a cut.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Awaitable, Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import av
import msgspec
import numpy as np
from PIL import Image

from pipelines._errors import NoFrames, VideoUndecodable

__all__ = [
    "Detect",
    "Frames",
    "SamplingPolicy",
    "Strategy",
    "frame_indices",
    "keyframe_indices",
    "sample_frames",
    "sample_frames_async",
    "uniform_indices",
]

VideoSource = bytes | Path
Strategy = Literal["uniform", "adaptive", "keyframes"]
# Small RGB frames (HxWx3 uint8, in video order) -> the shots, each (first, last) frame index.
Detect = Callable[[list[np.ndarray]], Awaitable[list[tuple[int, int]]]]


class SamplingPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How many frames a provider gets, how they are chosen, and at which JPEG width."""

    max_frames: Annotated[int, msgspec.Meta(ge=1, le=100)]
    strategy: Strategy = "uniform"
    width: Annotated[int, msgspec.Meta(ge=16, le=8192)]
    jpeg_quality: Annotated[int, msgspec.Meta(ge=1, le=95)] = 85
    # Adaptive only: seconds of video per frame before `max_frames` caps the count.
    adaptive_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    # Keyframes only: the shot detector (a model `gateway models build` wrote), the cut
    # probability above which a frame is a cut, and the longest video it is run on (frames;
    # 54,000 is 30 min at 30 fps, about 210 MB of detector input); longer ones go uniform.
    detector: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "transnetv2"
    threshold: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    max_detect_frames: Annotated[int, msgspec.Meta(ge=1)] = 54_000


class Frames(msgspec.Struct, frozen=True, kw_only=True):
    """The sampled frames (JPEG bytes, in video order) and what they were taken from."""

    images: list[bytes]
    indices: list[int]
    total_frames: int
    duration_s: float
    # The source's size; each image is at most the policy's width, aspect kept.
    source_width: int
    source_height: int
    # How the frames were chosen: the policy's strategy, or "uniform" when keyframes could
    # not be detected; the shots found when they were.
    strategy: Strategy = "uniform"
    shots: list[tuple[int, int]] | None = None


def uniform_indices(total: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `total` frames, first and last included."""
    if total <= 0:
        return []
    picked = np.linspace(0, total - 1, min(count, total), dtype=int)
    return [int(i) for i in picked]


def _spread(start: int, end: int, count: int) -> list[int]:
    """`count` indices in [start, end], each the middle of one of `count` equal parts."""
    length = end - start + 1
    return [start + (2 * j + 1) * length // (2 * count) for j in range(count)]


def keyframe_indices(shots: Sequence[tuple[int, int]], count: int) -> list[int]:
    """At most `count` frame indices, each inside a shot (first, last), in video order."""
    shots = [(a, b) for a, b in shots if b >= a]
    if not shots or count <= 0:
        return []
    if len(shots) >= count:
        return [_spread(*shots[i], 1)[0] for i in uniform_indices(len(shots), count)]
    lengths = [b - a + 1 for a, b in shots]
    quota = [1] * len(shots)
    # The rest one at a time, each to the shot with the most frames per chosen frame (the
    # D'Hondt rule: proportional to length), a shot never given more than its own frames.
    for _ in range(min(count, sum(lengths)) - len(shots)):
        best = max(
            range(len(shots)),
            key=lambda k: lengths[k] / quota[k] if quota[k] < lengths[k] else -1.0,
        )
        quota[best] += 1
    return [i for (a, b), k in zip(shots, quota, strict=True) for i in _spread(a, b, k)]


def frame_indices(total: int, duration_s: float, policy: SamplingPolicy) -> list[int]:
    """The indices `policy` picks from a video of `total` frames lasting `duration_s`
    (keyframes without a detector: uniform)."""
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
    """Decode `source` (bytes or a file path) once and return the frames `policy` picks
    (keyframes need a detector: `sample_frames_async`; here they fall back to uniform).

    Raises VideoUndecodable for anything PyAV cannot decode, NoFrames for an empty stream.
    """
    total, duration = _probe(source)
    strategy: Strategy = "adaptive" if policy.strategy == "adaptive" else "uniform"
    wanted = frame_indices(total, duration, policy)
    return _decode(source, policy, wanted, (total, duration), strategy)


def _small_frames(source: VideoSource, size: tuple[int, int], limit: int) -> list[np.ndarray]:
    """Every frame at `size` (width, height) as RGB arrays; empty when there are over `limit`."""
    total, _duration = _probe(source)
    if total > limit:
        return []
    small: list[np.ndarray] = []
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                # FFmpeg's scaler, as TransNetV2's own pipeline shrinks its input.
                shrunk = frame.reformat(width=size[0], height=size[1], format="rgb24")
                small.append(shrunk.to_ndarray())
                if len(small) > limit:
                    return []
        except av.FFmpegError as exc:
            raise VideoUndecodable(f"cannot decode the video: {type(exc).__name__}") from exc
    return small


def _decode(
    source: VideoSource,
    policy: SamplingPolicy,
    wanted: list[int],
    probed: tuple[int, float],
    strategy: Strategy,
    *,
    shots: list[tuple[int, int]] | None = None,
) -> Frames:
    """The frames at `wanted` (sorted indices) as JPEGs at the policy's width."""
    total, duration = probed
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
        strategy=strategy,
        shots=shots,
    )


async def sample_frames_async(
    source: VideoSource,
    policy: SamplingPolicy,
    *,
    detect: Detect | None = None,
    detect_size: tuple[int, int] = (48, 27),
) -> Frames:
    """The frames `policy` picks, decoded in worker threads so the event loop never stalls.

    Keyframes need `detect` (shots of frames at `detect_size`); without it, or for a video
    over `max_detect_frames`, the frames are uniform (`Frames.strategy` says which it was).
    """
    if policy.strategy != "keyframes" or detect is None:
        return await asyncio.to_thread(sample_frames, source, policy)
    small = await asyncio.to_thread(_small_frames, source, detect_size, policy.max_detect_frames)
    if not small:
        return await asyncio.to_thread(sample_frames, source, policy)
    shots = await detect(small)
    wanted = keyframe_indices(shots, policy.max_frames) or uniform_indices(len(small), 1)
    probed = await asyncio.to_thread(_probe, source)
    return await asyncio.to_thread(
        _decode, source, policy, wanted, probed, "keyframes", shots=shots
    )
