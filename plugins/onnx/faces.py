"""BlazeFace's pre- and post-processing: letterboxed input, SSD anchors, decoding, NMS.

Why it exists: the ONNX graph only maps a 192x192 image to 2304 raw candidates; turning a photo
of any size into that input and the candidates back into pixel boxes of the photo is MediaPipe's
calculator graph (ImageToTensor with letterbox, SsdAnchors, TensorsToDetections, weighted
NonMaxSuppression, DetectionLetterboxRemoval), rewritten here in numpy with the full-range
model's options from face_detection_full_range_common.pbtxt. Pure: numpy and Pillow only, so
it is tested without a runtime and runs in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from plugins.onnx._pixels import MAX_PIXELS, rgb_image
from plugins.onnx.errors import OnnxInferenceError

__all__ = [
    "FULL_RANGE",
    "INPUT_SIZE",
    "KEYPOINTS",
    "SHORT_RANGE",
    "AnchorOptions",
    "Face",
    "Letterbox",
    "non_max_suppression",
    "postprocess",
    "preprocess",
    "ssd_anchors",
]

# MediaPipe's FaceKeyPoint order; "right" is the person's (the image's left for a face turned
# toward the camera).
KEYPOINTS = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)
# MediaPipe clips raw score logits at 100 before the sigmoid.
_SCORE_CLIP = 100.0


@dataclass(frozen=True, slots=True)
class AnchorOptions:
    """The SsdAnchorsCalculator options of a BlazeFace model (anchors of fixed size 1)."""

    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    anchor_offset: float = 0.5


FULL_RANGE = AnchorOptions(input_size=192, strides=(4,), interpolated_scale_aspect_ratio=0.0)
SHORT_RANGE = AnchorOptions(
    input_size=128, strides=(8, 16, 16, 16), interpolated_scale_aspect_ratio=1.0
)

INPUT_SIZE = FULL_RANGE.input_size  # what `preprocess` letterboxes into by default

_BY_INPUT_SIZE = {options.input_size: options for options in (FULL_RANGE, SHORT_RANGE)}


@lru_cache(maxsize=4)  # pure function of a frozen value: computed once per model kind
def ssd_anchors(options: AnchorOptions) -> np.ndarray:
    """Anchor centres [n, 2] (x, y in [0, 1]) in the order the model emits its candidates."""
    # Each layer puts one anchor per aspect ratio (only 1.0 here) on each cell, plus one of an
    # interpolated scale when that ratio is set; layers of equal stride share one grid.
    per_layer = 1 + (1 if options.interpolated_scale_aspect_ratio > 0 else 0)
    groups: list[tuple[int, int]] = []
    for stride in options.strides:
        if groups and groups[-1][0] == stride:
            groups[-1] = (stride, groups[-1][1] + per_layer)
        else:
            groups.append((stride, per_layer))
    parts = []
    for stride, repeats in groups:
        cells = -(-options.input_size // stride)
        centres = (np.arange(cells, dtype=np.float32) + options.anchor_offset) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        parts.append(np.repeat(grid, repeats, axis=0))
    anchors = np.concatenate(parts)
    anchors.setflags(write=False)
    return anchors


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was fitted into the model's square input: scale, then centred padding."""

    width: int  # of the original image
    height: int
    scale_x: float  # input pixels per original pixel
    scale_y: float
    pad_x: float  # input pixels of padding left of the image
    pad_y: float
    size: int  # the model's input side


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face in pixels of the original image."""

    box: tuple[int, int, int, int]  # x_min, y_min, x_max, y_max
    score: float
    keypoints: tuple[tuple[float, float], ...]  # (x, y) in the order of KEYPOINTS


def preprocess(
    image: Image.Image,
    original: tuple[int, int] | None = None,
    *,
    size: int = INPUT_SIZE,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, Letterbox]:
    """`image` letterboxed into [1, size, size, 3] float32 in [-1, 1] (black padding).

    `original`: the size of the picture `image` was decoded from at reduced scale; the
    letterbox (and so every box postprocess finds) is in its pixels. `image.size` by default.
    """
    rgb = rgb_image(image, max_pixels=max_pixels)
    width, height = original or rgb.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = Image.new("RGB", (size, size))
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    # reducing_gap: a fast integer box reduction first, then bilinear; for a photo many times
    # the input's size this is ~3x cheaper than bilinear over every source pixel, and the
    # detector sees the same 192 px picture.
    small = rgb.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    canvas.paste(small, (pad_x, pad_y))
    tensor = np.asarray(canvas, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
    # The scales actually applied, which rounding makes differ slightly between the axes.
    letterbox = Letterbox(
        width, height, new_w / width, new_h / height, float(pad_x), float(pad_y), size
    )
    return tensor[np.newaxis], letterbox


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    result: np.ndarray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return result


def non_max_suppression(
    rows: np.ndarray, scores: np.ndarray, *, iou: float, weighted: bool
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's NMS over `rows` [n, 4 + k] (box x0, y0, x1, y1, then any keypoints).

    Highest score first; every remaining row whose box overlaps it by IoU > `iou` is
    suppressed. Weighted (MediaPipe's WEIGHTED): the kept row becomes the score-weighted mean of
    itself and the rows it suppressed (keypoints included), keeping its own score.
    """
    order = np.argsort(-scores, kind="stable")
    rows, scores = rows[order], scores[order]
    kept_rows: list[np.ndarray] = []
    kept_scores: list[float] = []
    remaining = np.arange(len(rows))
    while remaining.size:
        top = remaining[0]
        overlaps = _iou(rows[top, :4], rows[remaining, :4]) > iou
        overlaps[0] = True  # a degenerate box still suppresses itself
        group = remaining[overlaps]
        if weighted:
            weights = scores[group][:, np.newaxis]
            kept_rows.append((rows[group] * weights).sum(axis=0) / weights.sum())
        else:
            kept_rows.append(rows[top])
        kept_scores.append(float(scores[top]))
        remaining = remaining[~overlaps]
    width = rows.shape[1] if rows.ndim == 2 else 4
    if not kept_rows:
        return np.zeros((0, width), rows.dtype), np.zeros(0, scores.dtype)
    return np.stack(kept_rows), np.asarray(kept_scores)


def _candidates(outputs: Sequence[np.ndarray], anchors: np.ndarray) -> tuple[np.ndarray, ...]:
    if len(outputs) != 2:
        raise OnnxInferenceError(f"BlazeFace answers 2 outputs, got {len(outputs)}")
    raw = np.asarray(outputs[0], dtype=np.float64).reshape(-1, outputs[0].shape[-1])
    logits = np.asarray(outputs[1], dtype=np.float64).reshape(-1)
    shape_ok = raw.shape[1] >= 4 and raw.shape[1] % 2 == 0
    if raw.shape[0] != len(anchors) or logits.shape[0] != len(anchors) or not shape_ok:
        raise OnnxInferenceError(
            f"BlazeFace outputs of shapes {[o.shape for o in outputs]} do not match "
            f"{len(anchors)} anchors"
        )
    return raw, logits


def postprocess(
    outputs: Sequence[np.ndarray],
    letterbox: Letterbox,
    *,
    min_score: float = 0.5,
    iou: float = 0.3,
    weighted: bool = True,
) -> list[Face]:
    """The faces in one image's model outputs (`regressors`, `classificators`), best first."""
    options = _BY_INPUT_SIZE.get(letterbox.size)
    if options is None:
        raise OnnxInferenceError(f"no BlazeFace model takes a {letterbox.size}-pixel input")
    anchors = ssd_anchors(options).astype(np.float64)
    raw, logits = _candidates(outputs, anchors)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -_SCORE_CLIP, _SCORE_CLIP)))
    keep = scores >= min_score
    points_count = raw.shape[1] // 2 - 2  # (x, y) pairs after the 4 box values
    raw, scores, anchors = raw[keep] / letterbox.size, scores[keep], anchors[keep]
    # Regressors: centre offset and size relative to the anchor, then (x, y) keypoint offsets.
    centre, half = raw[:, 0:2] + anchors, raw[:, 2:4] / 2
    points = raw[:, 4:].reshape(len(raw), points_count, 2) + anchors[:, np.newaxis, :]
    rows = np.concatenate(
        [centre - half, centre + half, points.reshape(len(raw), 2 * points_count)], axis=1
    )
    valid = (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
    rows, scores = non_max_suppression(rows[valid], scores[valid], iou=iou, weighted=weighted)
    # Normalised input coordinates -> pixels of the original image.
    xy = rows.reshape(len(rows), 2 + points_count, 2) * letterbox.size
    xy = (xy - (letterbox.pad_x, letterbox.pad_y)) / (letterbox.scale_x, letterbox.scale_y)
    limits = np.array([letterbox.width, letterbox.height], dtype=np.float64)
    faces = []
    for corners, score in zip(xy, scores, strict=True):
        low = np.clip(np.round(corners[0]), 0, limits).astype(int)
        high = np.clip(np.round(corners[1]), 0, limits).astype(int)
        if high[0] <= low[0] or high[1] <= low[1]:
            continue  # entirely inside the padding
        keypoints = tuple((float(x), float(y)) for x, y in corners[2:])
        box = (int(low[0]), int(low[1]), int(high[0]), int(high[1]))
        faces.append(Face(box=box, score=float(score), keypoints=keypoints))
    return faces
