"""Image embeddings for near-duplicate detection (MobileNetV2 ImageNet features): pure numpy.

Why it exists: the runner stacks preprocessed images, runs the model and hands each row of
`features` back; this module owns the two ends. The whole image is resized to 224x224
(no centre crop: a near-duplicate may differ only at its borders, and a crop would hide
that), scaled to [0, 1] and normalised with ImageNet's mean and std, as the weights were
trained; features are L2-normalised so that a dot product is the cosine similarity.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from plugins.onnx._pixels import MAX_PIXELS, rgb_image

__all__ = [
    "DUPLICATE_THRESHOLD",
    "SIZE",
    "cosine_similarity",
    "embedding",
    "is_near_duplicate",
    "preprocess",
]

SIZE = 224
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)
# Measured on real photographs and video frames: a copy at half or three quarters the size,
# recompressed as JPEG quality 60, scores 0.91-0.99 against its original; different photos
# and different shots of one video score 0.49-0.79.
DUPLICATE_THRESHOLD = 0.85


def preprocess(image: Image.Image) -> np.ndarray:
    """A PIL image -> float32 [1, 3, 224, 224], the model's `pixel_values` for one image;
    OnnxBadInput for an image without pixels, too large, or of an unusable mode."""
    rgb = rgb_image(image, max_pixels=MAX_PIXELS).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    return ((pixels - _MEAN) / _STD).astype(np.float32)


def embedding(features: np.ndarray) -> np.ndarray:
    """Features ([1280] or [batch, 1280]) -> L2-normalised rows of the same shape."""
    rows = np.atleast_2d(np.asarray(features, dtype=np.float32))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    normalised = rows / np.maximum(norms, 1e-12)
    out: np.ndarray = normalised.reshape(np.shape(features))
    return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two feature vectors (normalised or not)."""
    return float(np.dot(embedding(a.reshape(-1)), embedding(b.reshape(-1))))


def is_near_duplicate(a: np.ndarray, b: np.ndarray, threshold: float = DUPLICATE_THRESHOLD) -> bool:
    """Whether two images' features are close enough to call one a copy of the other."""
    return cosine_similarity(a, b) >= threshold
