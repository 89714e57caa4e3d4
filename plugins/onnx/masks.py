"""Selfie segmentation's pre- and post-processing: 256x256 input, mask at the image's size.

Why it exists: the ONNX graph maps a 256x256 RGB image in [0, 1] to a person probability per
pixel; MediaPipe's selfie segmentation graph stretches the whole image to that square (no
letterbox) and stretches the probabilities back, which is what this module does in numpy and
Pillow, then thresholds them into the mask the segmentation task answers (PNG of the image's
size, its foreground fraction). Pure: no runtime import, so it is tested on its own.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

from plugins.onnx._pixels import MAX_PIXELS, rgb_image
from plugins.onnx.errors import OnnxBadInput, OnnxInferenceError

__all__ = ["INPUT_SIZE", "Mask", "Size", "postprocess", "preprocess"]

INPUT_SIZE = 256


class Size(NamedTuple):
    """The original image's size, which the mask is brought back to."""

    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Mask:
    """A person mask: True where a person is, at the original image's size."""

    mask: np.ndarray  # bool [height, width]
    score: float | None  # mean probability over the foreground pixels; None when empty

    @property
    def foreground_fraction(self) -> float:
        """The share of the image's pixels that are foreground."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def to_png(self) -> bytes:
        """The mask as a greyscale PNG of the image's size: 255 foreground, 0 background."""
        buffer = io.BytesIO()
        Image.fromarray(self.mask.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
        return buffer.getvalue()


def preprocess(
    image: Image.Image,
    original: tuple[int, int] | None = None,
    *,
    size: int = INPUT_SIZE,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, Size]:
    """`image` stretched to [1, size, size, 3] float32 in [0, 1], with the size the mask is
    brought back to: `original` (the picture `image` was decoded from at reduced scale), else
    `image.size`."""
    rgb = rgb_image(image, max_pixels=max_pixels)
    # reducing_gap: an integer box reduction first (see faces.preprocess), then bilinear.
    resized = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    tensor = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
    return tensor[np.newaxis], Size(*(original or rgb.size))


def _probabilities(output: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    # The runner hands every output of the model; the segmenter has exactly one.
    array = np.asarray(output[0] if isinstance(output, (list, tuple)) else output)
    squeezed = np.squeeze(array)
    if squeezed.ndim != 2:
        raise OnnxInferenceError(f"a person mask of shape {array.shape} is not one 2-D map")
    return squeezed.astype(np.float32)


def postprocess(
    output: np.ndarray | Sequence[np.ndarray], size: Size, *, threshold: float = 0.5
) -> Mask:
    """The model's probabilities resized to `size` (bilinear) and thresholded (> `threshold`)."""
    if not 0.0 <= threshold < 1.0:
        raise OnnxBadInput(
            f"the mask threshold must be in [0, 1), got {threshold}", param="threshold"
        )
    probabilities = _probabilities(output)
    full = Image.fromarray(probabilities, mode="F").resize(
        (size.width, size.height), Image.Resampling.BILINEAR
    )
    values = np.asarray(full, dtype=np.float32)
    mask = values > threshold
    score = float(values[mask].mean()) if mask.any() else None
    return Mask(mask=mask, score=score)
