"""Frames sampled from a video as JPEG images sized for the provider that will see them.

Why here and not in the handler: sampling is the part that decides cost and quality (each frame
is an image the provider bills), so it is a pure function of the video and a `SamplingPolicy`,
tested on real videos. Decoding keeps only the chosen frames (each converted to RGB and JPEG
as it is decoded, no other frame is): a long video never sits in memory. Between chosen frames
it seeks to the keyframe before the next one instead of decoding the frames in between
(`pipelines._seek`: the same frames, by pts, as decoding straight through, which is what a
stream that cannot be seeked reliably gets, logged once). It runs in a worker thread
(`sample_frames_async`) because PyAV decodes synchronously and would otherwise stall the
consumer's event loop.

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
import functools
import io
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import av
import msgspec
import numpy as np
import structlog
from PIL import Image

from pipelines._errors import NoFrames, VideoUndecodable
from pipelines._seek import FrameIndex, SeekingDecoder, read_index

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

LOGGER = "gateway.pipelines"
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
    # Frames the decoder produced to get these (a debug figure: seeking keeps it low).
    decoded_frames: int = 0


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


class _Probed(NamedTuple):
    total: int
    duration: float
    # The frame index seeking needs, or why there is none (not asked for, or not trusted).
    frame_index: FrameIndex | str = "not read"


def _probe(source: VideoSource, *, indexed: bool = False) -> _Probed:
    """Frame count and duration; frames counted from packets when the header has no count,
    and (`indexed`) the packets' frame index, read by the same demux."""
    index: FrameIndex | str = "not read"
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
        if total <= 0 or indexed:
            try:
                # Demuxing without decoding: cheap, and nothing but the pts kept.
                count, index = read_index(container, stream, total)
            except av.FFmpegError as exc:
                raise VideoUndecodable(f"cannot read the video: {type(exc).__name__}") from exc
            total = total if total > 0 else count
            index = index if indexed else "not read"
        if duration <= 0 and total > 0 and stream.average_rate:
            duration = float(Fraction(total) / stream.average_rate)
    if total <= 0:
        raise NoFrames("the video has no frames")
    return _Probed(total, duration, index)


def _jpeg(image: Image.Image, width: int, quality: int) -> bytes:
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def sample_frames(source: VideoSource, policy: SamplingPolicy, *, seek: bool = True) -> Frames:
    """Decode `source` (bytes or a file path) once and return the frames `policy` picks
    (keyframes need a detector: `sample_frames_async`; here they fall back to uniform).
    `seek=False` decodes straight through, as a stream seeking fails on does.

    Raises VideoUndecodable for anything PyAV cannot decode, NoFrames for an empty stream.
    """
    probed = _probe(source, indexed=seek)
    strategy: Strategy = "adaptive" if policy.strategy == "adaptive" else "uniform"
    wanted = frame_indices(probed.total, probed.duration, policy)
    return _decode(source, policy, wanted, probed, strategy)


def _small_frames(source: VideoSource, size: tuple[int, int], limit: int) -> list[np.ndarray]:
    """Every frame at `size` (width, height) as RGB arrays; empty when there are over `limit`."""
    total = _probe(source).total
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


class _Taken(NamedTuple):
    at: int
    jpeg: bytes
    # The source's (width, height).
    size: tuple[int, int]


def _take(index: int, frame: Any, policy: SamplingPolicy) -> _Taken:
    # Converted to RGB and JPEG at once: a frame never wanted is never converted, and no
    # decoded picture outlives its turn (20 4K frames would be 500 MB).
    image = frame.to_image()
    return _Taken(index, _jpeg(image, policy.width, policy.jpeg_quality), image.size)


def _decode(
    source: VideoSource,
    policy: SamplingPolicy,
    wanted: list[int],
    probed: _Probed,
    strategy: Strategy,
    *,
    shots: list[tuple[int, int]] | None = None,
) -> Frames:
    """The frames at `wanted` (sorted indices) as JPEGs at the policy's width: seeking past
    the frames between them when the probe read a frame index, else straight through."""
    taken: list[_Taken] = []
    decoded = 0
    failure: str | None = None
    straight = True
    index = probed.frame_index
    if isinstance(index, FrameIndex):
        seeking_frames, runs, straight_frames = index.planned(wanted)
        if seeking_frames < straight_frames:
            # Frame threads decode one frame ahead per thread, work a seek throws away:
            # at most half a run's frames ahead, all cores for runs that long.
            threads = max(1, min(os.cpu_count() or 1, seeking_frames // (2 * max(runs, 1))))
            taken, decoded, failure = _decode_seeking(source, policy, wanted, index, threads)
            straight = failure is not None
    elif index != "not read":
        failure = index
    if failure is not None:
        # Once per video, not per frame: the straight decode below gives the same frames.
        structlog.get_logger(LOGGER).info("frames_seek_unavailable", reason=failure)
    if straight:
        taken, count = _decode_straight(source, policy, wanted)
        decoded += count
    if not taken:
        raise NoFrames("the video decoded to no frames")
    return Frames(
        images=[t.jpeg for t in taken],
        indices=[t.at for t in taken],
        total_frames=probed.total,
        duration_s=probed.duration,
        source_width=taken[0].size[0],
        source_height=taken[0].size[1],
        strategy=strategy,
        shots=shots,
        decoded_frames=decoded,
    )


def _decode_seeking(
    source: VideoSource,
    policy: SamplingPolicy,
    wanted: list[int],
    index: FrameIndex,
    threads: int,
) -> tuple[list[_Taken], int, str | None]:
    """The frames at `wanted`, seeking past the frames between them; how many were decoded;
    and why the frames cannot be trusted when they cannot (None when they can)."""
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        seeking = SeekingDecoder(container, stream, index)
        try:
            taken = [_take(i, frame, policy) for i, frame in seeking.frames(wanted)]
        except av.FFmpegError as exc:
            seeking.failure = f"decoding after a seek failed: {type(exc).__name__}"
            taken = []
    return taken, seeking.decoded, seeking.failure


def _decode_straight(
    source: VideoSource, policy: SamplingPolicy, wanted: list[int]
) -> tuple[list[_Taken], int]:
    """The frames at `wanted`, every frame up to the last one decoded; and how many were."""
    targets = set(wanted)
    taken: list[_Taken] = []
    decoded = 0
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded += 1
                if index in targets:
                    taken.append(_take(index, frame, policy))
                if index >= wanted[-1]:
                    break
        except av.FFmpegError as exc:
            raise VideoUndecodable(f"cannot decode the video: {type(exc).__name__}") from exc
    return taken, decoded


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
    probed = await asyncio.to_thread(functools.partial(_probe, source, indexed=True))
    return await asyncio.to_thread(
        _decode, source, policy, wanted, probed, "keyframes", shots=shots
    )
