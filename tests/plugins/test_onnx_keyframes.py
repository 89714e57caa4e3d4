"""Shot boundaries of a real video with the exported TransNetV2, and the windowing scheme."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import pytest

from plugins.onnx import keyframes
from plugins.onnx.errors import OnnxBadInput

DATA = Path(__file__).resolve().parents[1] / "data" / "onnx"


def _decoded(video: Path, count: int) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def test_shot_boundaries_of_the_test_video_match_the_original_model(
    onnx_models: Path, transnetv2_test_video: Path
) -> None:
    """The ONNX model finds the same 17 shots in 750 frames as the package's torch model."""
    recorded = json.loads((DATA / "transnetv2_test_video_750.json").read_text())
    session = ort.InferenceSession(
        str(onnx_models / "transnetv2" / "model.onnx"), providers=["CPUExecutionProvider"]
    )

    def infer(windows: np.ndarray) -> np.ndarray:
        outputs = [session.run(["single_frame"], {"frames": windows[i : i + 8]})[0]
                   for i in range(0, len(windows), 8)]  # fmt: skip
        return np.concatenate(outputs)

    small = keyframes.stack_frames(_decoded(transnetv2_test_video, recorded["frames"]))
    probabilities = keyframes.predict(small, infer)
    found = keyframes.scenes(probabilities, recorded["threshold"])
    assert [[s.start, s.end] for s in found] == recorded["scenes"]
    assert len(found) == 17
    reference = np.load(DATA / "transnetv2_test_video_750.npy")
    assert float(np.max(np.abs(probabilities - reference))) < 1e-4
    assert keyframes.keyframes(found)[:3] == [0, 25, 55]


@pytest.mark.parametrize("count", [1, 49, 50, 51, 130])
def test_windows_overlap_so_each_frame_is_predicted_once(count: int) -> None:
    """Each frame's probability comes from the middle of exactly one window, in order."""
    frames = np.zeros((count, 27, 48, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(count)  # each frame carries its own index

    def infer(windows: np.ndarray) -> np.ndarray:
        assert windows.shape[1:] == (100, 27, 48, 3)
        return windows[:, :, 0, 0, 0].astype(np.float32)[..., None]

    assert keyframes.predict(frames, infer).tolist() == list(range(count))


def test_windows_pad_with_the_first_and_last_frames() -> None:
    """51 frames give two windows: 25 copies of frame 0 in front, the last frame behind."""
    frames = np.zeros((51, 27, 48, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(51)
    windows = keyframes.windows(frames)
    assert windows.shape == (2, 100, 27, 48, 3)
    marks = windows[:, :, 0, 0, 0]
    assert marks[0, :26].tolist() == [0] * 26 and marks[0, 26] == 1
    assert marks[1, -25:].tolist() == [50] * 25


def test_scenes_follow_the_original_rules() -> None:
    """Runs above the threshold separate shots; a transition's frames belong to no shot."""
    cuts = np.array([0.1, 0.2, 0.9, 0.1, 0.1, 0.8, 0.7, 0.2, 0.1])
    assert keyframes.scenes(cuts) == [keyframes.Scene(0, 2), keyframes.Scene(3, 5),
                                      keyframes.Scene(7, 8)]  # fmt: skip
    assert keyframes.scenes(np.ones(4)) == [keyframes.Scene(0, 3)]
    assert keyframes.keyframes([keyframes.Scene(3, 5), keyframes.Scene(7, 8)]) == [4, 7]


def test_frames_are_resized_to_the_model_input() -> None:
    """A decoded frame of any size becomes 27x48 RGB; a 27x48 frame is kept as it is."""
    frame = np.full((90, 160, 3), 200, dtype=np.uint8)
    assert keyframes.resize_frame(frame).shape == (27, 48, 3)
    small = np.zeros((27, 48, 3), dtype=np.uint8)
    assert keyframes.resize_frame(small) is small


@pytest.mark.parametrize(
    "frame",
    [np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10), np.uint8),
     np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8)],
    ids=["four-channels", "greyscale", "float", "zero-sized"],
)  # fmt: skip
def test_bad_frames_are_refused(frame: np.ndarray) -> None:
    """Frames that are not HxWx3 uint8 with pixels are bad inputs naming the frames."""
    with pytest.raises(OnnxBadInput) as caught:
        keyframes.resize_frame(frame)
    assert caught.value.param == "frames"


def test_a_video_without_frames_is_refused() -> None:
    """An empty frame list is a bad input."""
    with pytest.raises(OnnxBadInput, match="at least one frame"):
        keyframes.stack_frames([])
