"""Pure transforms of the vision kinds: the input image checked and decoded, the providers'
answers (the chat tasks' JSON, or a self-hosted model's detections) turned into result boxes,
and per-object masks merged into the one mask a result stores.

Why pure: both serving paths (the proxy's chat task, the in-process ONNX model) end here, so the
shape of a result cannot depend on which one answered, and every rule (the `[x, y, w, h]`
convention, clipping, the 128 threshold of a mask) is tested without a model or a server.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import msgspec
import numpy as np
from PIL import Image, UnidentifiedImageError

from pipelines._errors import AnswerInvalid, ImageTooLarge, ImageUndecodable, InputRefused
from pipelines._vision_schemas import Face, Landmark, Region
from plugins.onnx.faces import KEYPOINTS
from plugins.onnx.images import DecodedImage, decode_reduced

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_TYPES",
    "decode_image",
    "faces_from_answer",
    "faces_from_local",
    "mask_png",
    "masks_from_answer",
    "merge_masks",
    "region_of_mask",
    "select_faces",
]

# What the providers and the local models read; anything else is refused when resolved.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
# 40 MP: a 48 MP phone photo is refused, a decompression bomb's header is refused unread.
DEFAULT_MAX_PIXELS = 40_000_000
# Pillow's names of those formats (MPO: a JPEG with a second picture, as cameras write).
_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP"})


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, at_least: int | None = None
) -> DecodedImage:
    """`data` decoded (its pixels loaded; a JPEG at reduced scale when a model reading
    `at_least` pixels per side is all that needs it: `decode_reduced`), with its original size,
    or ImageUndecodable / ImageTooLarge / InputRefused (another format) saying why."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x raises) on large images; `max_pixels` decides here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageUndecodable(f"the image has no pixels ({width}x{height})")
            # From the header, before any pixel is decoded: a bomb is never expanded.
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"the image is {width}x{height} ({width * height} pixels); "
                    f"at most {max_pixels} are accepted"
                )
            if image.format not in _FORMATS:
                # A GIF or TIFF named .png: what the file is decides, not what it is called.
                raise InputRefused(f"the image is {image.format}; PNG, JPEG or WebP expected")
            size = decode_reduced(image, at_least)
            image.load()
    except Image.DecompressionBombError as exc:
        # Pillow refuses headers past twice its own limit before our check sees them.
        raise ImageTooLarge(f"the image is too large: {exc}"[:300]) from exc
    except UnidentifiedImageError as exc:
        raise ImageUndecodable("the image is not a PNG, JPEG or WebP Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageUndecodable(f"the image is truncated or corrupt: {exc}"[:300]) from exc
    return DecodedImage(image, size)


def _xywh(box: Sequence[float], width: int, height: int) -> list[int] | None:
    """`[x0, y0, x1, y1]` clipped to the image as `[x, y, w, h]`; None when nothing is left."""
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    return [x0, y0, x1 - x0, y1 - y0] if x0 < x1 and y0 < y1 else None


def _score(value: float | None) -> float | None:
    return None if value is None else round(min(1.0, max(0.0, float(value))), 4)


# The chat tasks' answers (plugins.fal.vision FACES_SCHEMA / MASKS_SCHEMA), read strictly.


class _Boxed(msgspec.Struct, frozen=True, kw_only=True):
    """One object of an answer: its box in the provider's pixels, and how sure it is."""

    box: list[float]
    score: float | None = None


class _MaskAnswer(_Boxed, frozen=True, kw_only=True):
    url: str


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    """An answer's header: the size of the image the provider saw."""

    width: int
    height: int


class _FacesAnswer(_Answer, frozen=True, kw_only=True):
    faces: list[_Boxed]


class _MasksAnswer(_Answer, frozen=True, kw_only=True):
    masks: list[_MaskAnswer]


A = TypeVar("A", bound=_Answer)


def _decoded(content: str | None, answer: type[A], what: str) -> A:
    if not content:
        raise AnswerInvalid(f"the {what} answer has no content")
    try:
        decoded = msgspec.json.decode(content, type=answer)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise AnswerInvalid(f"the {what} answer does not follow its schema: {exc}"[:300]) from exc
    if decoded.width < 1 or decoded.height < 1:
        raise AnswerInvalid(f"the {what} answer's image size is {decoded.width}x{decoded.height}")
    return decoded


def _box_of(found: _Boxed, answer: _Answer, width: int, height: int) -> list[int] | None:
    """`found`'s box in pixels of the `width` x `height` input (the provider may have read
    the file at another size), as `[x, y, w, h]`; None when nothing of it is in the image."""
    box = found.box
    if len(box) != 4:
        raise AnswerInvalid(f"a box has {len(box)} values, not 4")
    sx, sy = width / answer.width, height / answer.height
    return _xywh([box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy], width, height)


def faces_from_answer(content: str | None, width: int, height: int) -> list[Face]:
    """The faces of a face-detection chat answer, as boxes of the `width` x `height` input."""
    answer = _decoded(content, _FacesAnswer, "face-detection")
    faces = []
    for face in answer.faces:
        box = _box_of(face, answer, width, height)
        if box is not None:
            faces.append(Face(box=box, score=_score(face.score)))
    return faces


def faces_from_local(detections: Iterable[Any], width: int, height: int) -> list[Face]:
    """BlazeFace's detections (`box` corners, `score`, `keypoints` in pixels) as result faces."""
    faces = []
    for found in detections:
        box = _xywh(found.box, width, height)
        if box is None:
            continue
        # The keypoints come in MediaPipe's FaceKeyPoint order, which KEYPOINTS names.
        landmarks = [
            Landmark(name=name, x=round(float(x), 1), y=round(float(y), 1))
            for name, (x, y) in zip(KEYPOINTS, found.keypoints, strict=False)
        ]
        faces.append(Face(box=box, score=_score(found.score), landmarks=landmarks or None))
    return faces


def select_faces(
    faces: Sequence[Face], min_score: float | None, max_faces: int | None
) -> list[Face]:
    """Best first (faces without a score after the scored ones), at least `min_score`, at
    most `max_faces`; a face without a score is kept, as nothing says it is weak."""
    ordered = sorted(faces, key=lambda f: 1.0 if f.score is None else -f.score)
    ordered = [f for f in ordered if f.score is None or min_score is None or f.score >= min_score]
    return ordered[:max_faces] if max_faces is not None else ordered


def masks_from_answer(
    content: str | None, width: int, height: int
) -> tuple[list[str], list[Region]]:
    """The mask URLs of a segmentation chat answer and their objects' boxes in the input."""
    answer = _decoded(content, _MasksAnswer, "segmentation")
    urls, regions = [], []
    for mask in answer.masks:
        urls.append(mask.url)
        box = _box_of(mask, answer, width, height)
        if box is not None:
            regions.append(Region(box=box, score=_score(mask.score)))
    return urls, regions


def merge_masks(pngs: Iterable[bytes], width: int, height: int) -> np.ndarray:
    """The union of per-object masks (any single- or multi-channel image, >= 128 is the
    object) at the input's size: bool [height, width]."""
    merged = np.zeros((height, width), dtype=bool)
    for index, data in enumerate(pngs):
        try:
            with Image.open(io.BytesIO(data)) as opened:
                grey = opened.convert("L")
        except (OSError, SyntaxError, ValueError) as exc:
            raise AnswerInvalid(f"mask {index} of the answer does not decode") from exc
        if grey.size != (width, height):
            # Nearest keeps the mask binary; a provider mask of another size still covers the
            # same part of the picture.
            grey = grey.resize((width, height), Image.Resampling.NEAREST)
        merged |= np.asarray(grey) >= 128
    return merged


def region_of_mask(mask: np.ndarray, score: float | None) -> list[Region]:
    """The bounding box of a mask's foreground (none when it is empty)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    box = [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0]) + 1, int(rows[-1] - rows[0]) + 1]
    return [Region(box=box, score=_score(score))]


def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as a single-channel PNG: 255 foreground, 0 background."""
    out = io.BytesIO()
    # A 2-D uint8 array is mode "L": one channel.
    Image.fromarray(mask.astype(np.uint8) * 255).save(out, format="PNG")
    return out.getvalue()
