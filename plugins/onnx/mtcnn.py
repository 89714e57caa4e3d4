"""The MTCNN cascade in numpy: image pyramid -> PNet -> RNet -> ONet -> faces with landmarks.

Why it exists: MTCNN is three networks joined by plain array work, which facenet-pytorch
does with torch and torchvision; this is the same cascade (`detect_face` of facenet-pytorch
2.6.0, for one image) with the networks behind callables, so any runner (a batching session,
a consumer in-process) can serve them. Resampling is torch's "area" mode (adaptive average
pooling), NMS is torchvision's (IoU without the +1 pixel) in the first two stages and
facenet-pytorch's "Min" variant in the last, as in the original. Slower than BlazeFace, but
finds smaller and turned faces, and gives five landmarks (eyes, nose, mouth corners).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from plugins.onnx._pixels import MAX_PIXELS, rgb_image
from plugins.onnx.faces import Face

__all__ = ["KEYPOINTS", "Network", "detect"]

# A network: a float32 NCHW batch scaled to [-1, 1] -> its outputs in the model's order.
Network = Callable[[np.ndarray], Sequence[np.ndarray]]
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def detect(
    image: Image.Image,
    pnet: Network,
    rnet: Network,
    onet: Network,
    *,
    min_face_size: int = 20,
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
    factor: float = 0.709,
) -> list[Face]:
    """The faces in `image` (best first), boxes in pixels of `image`, with 5 keypoints."""
    pixels = np.asarray(rgb_image(image, max_pixels=MAX_PIXELS), dtype=np.float32)
    height, width = pixels.shape[:2]
    boxes = _proposals(pixels, pnet, min_face_size, thresholds[0], factor)
    boxes = _refine(pixels, boxes, rnet, thresholds[1])
    if len(boxes) == 0:
        return []
    crops, boxes = _crops(pixels, boxes, 48)
    regression, landmarks, probability = (np.asarray(o) for o in onet(crops))
    keep = probability[:, 1] > thresholds[2]
    boxes = np.column_stack([boxes[keep, :4], probability[keep, 1]])
    landmarks, regression = landmarks[keep], regression[keep]
    side_w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    side_h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    xs = side_w * landmarks[:, :5] + boxes[:, :1] - 1
    ys = side_h * landmarks[:, 5:10] + boxes[:, 1:2] - 1
    boxes = _regress(boxes, regression)
    pick = _nms(boxes[:, :4], boxes[:, 4], 0.7, overlap="min")
    faces = []
    for i in pick:
        x0, y0, x1, y1 = boxes[i, :4]
        box = (
            int(max(0, round(x0))), int(max(0, round(y0))),
            int(min(width, round(x1))), int(min(height, round(y1))),
        )  # fmt: skip
        points = tuple((float(x), float(y)) for x, y in zip(xs[i], ys[i], strict=True))
        faces.append(Face(box=box, score=float(boxes[i, 4]), keypoints=points))
    return faces


def _proposals(
    pixels: np.ndarray, pnet: Network, min_face_size: int, threshold: float, factor: float
) -> np.ndarray:
    """Stage 1: PNet over the pyramid -> square candidate boxes [n, 5] (x0, y0, x1, y1, s)."""
    height, width = pixels.shape[:2]
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    found: list[np.ndarray] = []
    while side >= 12:
        size = (int(height * scale + 1), int(width * scale + 1))
        regression, probability = (np.asarray(o) for o in pnet(_normalised(pixels, size)))
        candidates = _grid_boxes(regression[0], probability[0, 1], scale, threshold)
        found.append(candidates[_nms(candidates[:, :4], candidates[:, 4], 0.5)])
        scale *= factor
        side *= factor
    boxes = np.concatenate(found) if found else np.zeros((0, 9), np.float32)
    boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7)]
    reg_w, reg_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    moved = np.column_stack([
        boxes[:, 0] + boxes[:, 5] * reg_w, boxes[:, 1] + boxes[:, 6] * reg_h,
        boxes[:, 2] + boxes[:, 7] * reg_w, boxes[:, 3] + boxes[:, 8] * reg_h, boxes[:, 4],
    ])  # fmt: skip
    return _square(moved)


def _refine(pixels: np.ndarray, boxes: np.ndarray, rnet: Network, threshold: float) -> np.ndarray:
    """Stage 2: RNet on 24x24 crops rejects and regresses the candidates."""
    if len(boxes) == 0:
        return boxes
    crops, boxes = _crops(pixels, boxes, 24)
    regression, probability = (np.asarray(o) for o in rnet(crops))
    keep = probability[:, 1] > threshold
    boxes = np.column_stack([boxes[keep, :4], probability[keep, 1]])
    regression = regression[keep]
    pick = _nms(boxes[:, :4], boxes[:, 4], 0.7)
    return _square(_regress(boxes[pick], regression[pick]))


def _grid_boxes(
    regression: np.ndarray, probability: np.ndarray, scale: float, threshold: float
) -> np.ndarray:
    """PNet's output cells above the threshold -> [n, 9]: box, score, 4 regression terms."""
    ys, xs = np.nonzero(probability >= threshold)
    cells = np.column_stack([xs, ys]).astype(np.float32)
    top_left = np.floor((2 * cells + 1) / scale)
    bottom_right = np.floor((2 * cells + 12) / scale)
    return np.column_stack(
        [top_left, bottom_right, probability[ys, xs], regression[:, ys, xs].T]
    ).astype(np.float32)


def _regress(boxes: np.ndarray, regression: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    side_w = boxes[:, 2] - boxes[:, 0] + 1
    side_h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += regression[:, 0] * side_w
    out[:, 1] += regression[:, 1] * side_h
    out[:, 2] += regression[:, 2] * side_w
    out[:, 3] += regression[:, 3] * side_h
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre (facenet-pytorch's `rerec`)."""
    out = boxes.copy()
    h, w = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _crops(pixels: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised size x size crops of the boxes (clipped to the image), and the boxes kept
    (a box wholly outside the image gives no crop)."""
    height, width = pixels.shape[:2]
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    x0, y0 = np.maximum(corners[:, 0], 1), np.maximum(corners[:, 1], 1)
    x1, y1 = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
    keep = (y1 > y0 - 1) & (x1 > x0 - 1)
    crops = [
        _normalised(pixels[y0[i] - 1 : y1[i], x0[i] - 1 : x1[i]], (size, size))
        for i in np.flatnonzero(keep)
    ]
    empty = np.zeros((0, 3, size, size), np.float32)
    return (np.concatenate(crops) if crops else empty), boxes[keep]


def _normalised(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWx3 -> [1, 3, size] float32, area-resampled and scaled as (p - 127.5) / 128."""
    resized = _area_resize(pixels, *size)
    return ((resized - 127.5) * 0.0078125).transpose(2, 0, 1)[None].astype(np.float32)


def _area_resize(pixels: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """torch's interpolate(mode="area"): output cell i averages the input rows
    floor(i * in / out) .. ceil((i + 1) * in / out) - 1, likewise for columns."""

    def pool(values: np.ndarray, out: int, axis: int) -> np.ndarray:
        size = values.shape[axis]
        index = np.arange(out)
        start = (index * size) // out
        end = -((-(index + 1) * size) // out)
        sums = np.cumsum(values, axis=axis, dtype=np.float64)
        sums = np.concatenate([np.zeros_like(np.take(sums, [0], axis=axis)), sums], axis=axis)
        total = np.take(sums, end, axis=axis) - np.take(sums, start, axis=axis)
        shape = [1] * values.ndim
        shape[axis] = out
        mean: np.ndarray = total / (end - start).reshape(shape)
        return mean

    return pool(pool(pixels, out_h, 0), out_w, 1).astype(np.float32)


def _nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, overlap: str = "union"
) -> list[int]:
    """Indices kept by greedy NMS, best score first. "union": IoU on exact areas
    (torchvision); "min": intersection over the smaller box, areas with +1 (facenet)."""
    plus = 1.0 if overlap == "min" else 0.0
    x0, y0, x1, y1 = (boxes[:, i].astype(np.float64) for i in range(4))
    area = (x1 - x0 + plus) * (y1 - y0 + plus)
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        w = np.maximum(0.0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + plus)
        inter = w * h
        if overlap == "min":
            ratio = inter / np.minimum(area[best], area[rest])
        else:
            ratio = inter / (area[best] + area[rest] - inter)
        order = rest[ratio <= threshold]
    return kept
