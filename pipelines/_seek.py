"""Decoding only the frames a sample needs: seek to the keyframe before a wanted frame, decode on.

Why: decoding a clip straight through to take 10-20 of its frames decodes every frame before
the last one (300 for a 10 s 30 fps clip), the bulk of a summary's added latency. A frame can
only be decoded from the keyframe that starts its group of pictures, so when the next wanted
frame's keyframe lies ahead of the decoder, seeking there skips every frame in between.

A frame is named by its index in presentation order, the index straight decoding gives it
(`enumerate(container.decode(stream))`), so a seek must land on exactly that frame. The index
comes from the packets (demuxed, not decoded, before any frame is): each packet's pts, sorted,
is the presentation order, which holds with B-frames (pts out of decode order) and a variable
frame rate (no frame rate is assumed). Every decoded frame's pts is checked against it; a stream
the index cannot describe (a packet without pts, two with one pts, a count that disagrees with
the header), a seek PyAV refuses, or a frame that is not where the index says ends the seeking
with a reason, and the caller decodes straight through instead, as before.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

import av

__all__ = ["MIN_SKIP", "FrameIndex", "SeekingDecoder", "read_index"]

# Frames a seek must skip to be worth it: a seek flushes the decoder (its threads refill their
# pipeline), which costs about as much as decoding a few frames.
MIN_SKIP = 4


class FrameIndex:
    """Each frame's pts in presentation order, and the indices of the keyframes among them."""

    def __init__(self, pts: list[int], keyframes: list[int]) -> None:
        self.pts = pts
        self.keyframes = keyframes
        self.position = {p: i for i, p in enumerate(pts)}

    def planned(self, wanted: list[int]) -> tuple[int, int, int]:
        """Frames decoded to reach `wanted` (sorted) seeking, the runs of frames decoded
        between seeks, and the frames decoded straight through."""
        wanted = [w for w in wanted if w < len(self.pts)]
        seeking, runs, current = 0, 0, -1
        for target in wanted:
            key = self.keyframe_before(target)
            if current < 0 or key - current - 1 >= MIN_SKIP:
                runs += 1
            start = key if key - current - 1 >= MIN_SKIP else current + 1
            seeking, current = seeking + target - start + 1, target
        return seeking, runs, (wanted[-1] + 1 if wanted else 0)

    def keyframe_before(self, index: int) -> int:
        """The index of the last keyframe at or before frame `index` (0 when there is none)."""
        at = bisect.bisect_right(self.keyframes, index) - 1
        return self.keyframes[at] if at >= 0 else 0


def read_index(container: Any, stream: Any, header_frames: int) -> tuple[int, FrameIndex | str]:
    """The number of packets of `stream` (read to its end, nothing decoded) and its frame
    index, or why the index cannot be trusted."""
    pts: list[int | None] = []
    keys: list[int] = []
    for packet in container.demux(stream):
        if not packet.size:
            continue  # the demuxer's flush packet
        pts.append(packet.pts)
        if packet.is_keyframe and packet.pts is not None:
            keys.append(packet.pts)
    count = len(pts)
    known = sorted(p for p in pts if p is not None)
    if len(known) != count:
        return count, "a packet has no pts"
    if len(set(known)) != count:
        return count, "two packets share a pts"
    if header_frames > 0 and header_frames != count:
        return count, "the header's frame count disagrees with the packets"
    if not keys:
        return count, "no keyframe"
    index = FrameIndex(known, [])
    index.keyframes = sorted(index.position[k] for k in keys)
    return count, index


class SeekingDecoder:
    """The wanted frames of one open stream, seeking past the frames between them.

    `frames()` yields (index, frame) for each wanted index in order; when the stream turns
    out not to match its index it stops early and `failure` says why (the frames already
    yielded are then not to be trusted either). `decoded` counts the frames the decoder gave.
    """

    def __init__(self, container: Any, stream: Any, index: FrameIndex) -> None:
        self._container = container
        self._stream = stream
        self._index = index
        self.decoded = 0
        self.seeks = 0
        self.failure: str | None = None

    def _seek(self, key: int) -> Iterator[Any] | None:
        try:
            # The keyframe's own pts, not the wanted frame's: with B-frames a demuxer that
            # seeks by dts could otherwise land on the next keyframe, past the wanted frame.
            self._container.seek(
                self._index.pts[key], stream=self._stream, backward=True, any_frame=False
            )
        except av.FFmpegError as exc:
            self.failure = f"seek refused: {type(exc).__name__}"
            return None
        self.seeks += 1
        decoding: Iterator[Any] = iter(self._container.decode(self._stream))
        return decoding

    def frames(self, wanted: list[int]) -> Iterator[tuple[int, Any]]:
        """The frames at `wanted` (sorted indices; those past the last frame are left out)."""
        index = self._index
        decoding: Iterator[Any] | None = None
        current = -1  # the index of the last frame decoded
        for target in (w for w in wanted if w < len(index.pts)):
            key = index.keyframe_before(target)
            if decoding is None and key - current - 1 < MIN_SKIP:
                decoding = iter(self._container.decode(self._stream))
            elif key - current - 1 >= MIN_SKIP:
                decoding = self._seek(key)
                if decoding is None:
                    return
            assert decoding is not None  # one of the branches above set it
            for frame in decoding:
                self.decoded += 1
                found = index.position.get(frame.pts) if frame.pts is not None else None
                if found is None:
                    self.failure = "a decoded frame's pts is not in the index"
                    return
                current = found
                if found == target:
                    yield target, frame
                    break
                if found > target:
                    self.failure = f"frame {target} was not decoded after its keyframe"
                    return
            else:
                self.failure = f"the stream ended before frame {target}"
                return
