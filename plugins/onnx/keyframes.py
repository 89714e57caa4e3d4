"""Shot boundaries and keyframes from TransNetV2's per-frame predictions: pure numpy.

Why it exists: the model sees fixed windows of 100 tiny frames (27x48 RGB); turning a whole
video into those windows and the windows' outputs back into one probability per frame is
the package's own scheme (`TransNetV2.predict_frames`), reproduced here so any runner (the
batching session, a consumer in-process) gets the same scenes as the original:
the frame list is padded with 25 copies of the first frame in front and copies of the last
frame behind up to a multiple of 50, windows start every 50 frames, and each window
contributes its middle 50 predictions. A frame is a cut when its probability exceeds the
threshold; `predictions_to_scenes` is likewise reproduced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from plugins.onnx.errors import OnnxBadInput

__all__ = [
    "HEIGHT",
    "WIDTH",
    "WINDOW",
    "Scene",
    "frame_probabilities",
    "keyframes",
    "predict",
    "resize_frame",
    "scenes",
    "stack_frames",
    "windows",
]

WINDOW, HEIGHT, WIDTH = 100, 27, 48
_STEP, _CONTEXT = 50, 25  # windows overlap by half; each keeps its middle 50 frames
_MAX_SIDE = 16384


@dataclass(frozen=True, slots=True)
class Scene:
    """One shot: its first and last frame index, both included."""

    start: int
    end: int

    @property
    def keyframe(self) -> int:
        """The middle frame, the shot's most representative single frame."""
        return (self.start + self.end) // 2


def resize_frame(frame: np.ndarray) -> np.ndarray:
    """One decoded RGB frame (HxWx3 uint8) as the model's 27x48x3 input (bilinear); a frame
    already that small is returned unchanged."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise OnnxBadInput(
            f"a frame must be an HxWx3 uint8 RGB array, got {frame.dtype} {frame.shape}",
            param="frames",
        )
    height, width = frame.shape[:2]
    if height == 0 or width == 0 or max(height, width) > _MAX_SIDE:
        raise OnnxBadInput(f"a frame of {width}x{height} pixels cannot be used", param="frames")
    if (height, width) == (HEIGHT, WIDTH):
        return frame
    small = Image.fromarray(frame).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.uint8)


def stack_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Decoded frames -> [frames, 27, 48, 3] uint8."""
    if not frames:
        raise OnnxBadInput("a video needs at least one frame", param="frames")
    return np.stack([resize_frame(frame) for frame in frames])


def windows(small: np.ndarray) -> np.ndarray:
    """[frames, 27, 48, 3] -> [windows, 100, 27, 48, 3]: the overlapping model inputs."""
    if small.ndim != 4 or small.shape[1:] != (HEIGHT, WIDTH, 3) or len(small) == 0:
        raise OnnxBadInput(
            f"frames must be [n>0, {HEIGHT}, {WIDTH}, 3], got {small.shape}", param="frames"
        )
    count = len(small)
    tail = _CONTEXT + _STEP - (count % _STEP or _STEP)
    padded = np.concatenate(
        [np.repeat(small[:1], _CONTEXT, axis=0), small, np.repeat(small[-1:], tail, axis=0)]
    )
    starts = range(0, len(padded) - WINDOW + 1, _STEP)
    return np.stack([padded[start : start + WINDOW] for start in starts])


def frame_probabilities(outputs: np.ndarray, count: int) -> np.ndarray:
    """The model's per-window probabilities ([windows, 100] or [windows, 100, 1]) -> one
    probability per frame of a video of `count` frames."""
    per_window = outputs.reshape(outputs.shape[0], WINDOW)
    middle = per_window[:, _CONTEXT : _CONTEXT + _STEP].reshape(-1)
    if len(middle) < count:
        raise ValueError(f"{outputs.shape[0]} windows cannot cover {count} frames")
    return middle[:count].astype(np.float32)


def predict(small: np.ndarray, infer: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per-frame cut probabilities of [frames, 27, 48, 3], `infer` mapping a batch of windows
    to the model's `single_frame` output."""
    return frame_probabilities(infer(windows(small)), len(small))


def scenes(probabilities: np.ndarray, threshold: float = 0.5) -> list[Scene]:
    """Consecutive shots between cuts, as the package's `predictions_to_scenes` finds them:
    a run of frames above the threshold is a transition and belongs to no shot."""
    cuts = (np.asarray(probabilities) > threshold).astype(np.uint8)
    if len(cuts) == 0:
        return []
    found: list[Scene] = []
    previous, start = 0, 0
    for index, cut in enumerate(cuts.tolist()):
        if previous == 1 and cut == 0:
            start = index
        if previous == 0 and cut == 1 and index != 0:
            found.append(Scene(start, index))
        previous = cut
    if cuts[-1] == 0:
        found.append(Scene(start, len(cuts) - 1))
    return found or [Scene(0, len(cuts) - 1)]


def keyframes(found: Sequence[Scene]) -> list[int]:
    """One frame index per shot: its middle frame."""
    return [scene.keyframe for scene in found]
