"""Reading the image a vision request names: a data URL or an http(s) URL, decoded safely.

Why it exists: every image model refuses the same bad inputs the same way (not an image, zero
pixels, a decompression bomb, a mode no model reads) with a 400 naming the field, before any
model time is spent, so one bad image fails its own request and nothing else. An http(s) URL
goes through the artifacts package's guarded fetcher: a request to the gateway must not make
it reach inside its network (no private, loopback or metadata addresses unless allow-listed in
`gateway_settings.onnx.fetch_allow`), and the body is capped. A model that
reads a few hundred pixels per side gets a JPEG decoded at reduced scale (`decode_reduced`):
a 24 MP photo then costs a few MB and a fraction of the decoding time instead of 72 MB.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from artifacts import FETCH_ERRORS, GuardedFetcher, unusable_url
from plugins.onnx._pixels import MAX_PIXELS, check_image, rgb_image
from plugins.onnx.errors import OnnxBadInput

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "DecodedImage",
    "decode_image",
    "decode_reduced",
    "fetch_image",
    "image_fetcher",
]

MAX_IMAGE_BYTES = 32 * 1024 * 1024
_FETCH_TIMEOUT_S = 15.0
# What an image server may answer; octet-stream too, as object stores often serve images so
# (the decoder decides what the bytes are).
_FETCHED_TYPES = ("image/*", "application/octet-stream")


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An RGB image, and the size of the picture it was decoded from: the two differ when a
    JPEG was decoded at reduced scale, and answers (boxes, masks) are in the original's
    pixels."""

    image: Image.Image
    size: tuple[int, int]


def decode_reduced(image: Image.Image, at_least: int | None) -> tuple[int, int]:
    """The size of `image` (opened, not loaded), after asking its decoder to produce no more
    pixels than a model reading `at_least` pixels per side needs.

    JPEG decoders scale in the DCT domain by 1/2, 1/4 or 1/8, keeping both sides >= at_least,
    so a model that resizes down afterwards sees the same picture; other formats decode whole.
    """
    size: tuple[int, int] = image.size
    if at_least is not None and at_least > 0:
        image.draft("RGB", (at_least, at_least))
    return size


def decode_image(data: bytes, *, param: str = "image", at_least: int | None = None) -> DecodedImage:
    """`data` as an RGB image (see `decode_reduced` for `at_least`), or OnnxBadInput naming
    `param`."""
    if not data:
        raise OnnxBadInput("the image is empty", param=param)
    try:
        with warnings.catch_warnings():
            # PIL warns (and past 2x raises) on large images; the size check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            # Size and mode from the header, before any pixel is decoded (a bomb never is).
            check_image(image, max_pixels=MAX_PIXELS, param=param)
            size = decode_reduced(image, at_least)
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise OnnxBadInput("the data is not an image PIL can read", param=param) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise OnnxBadInput(f"the image is truncated or corrupt: {exc}", param=param) from exc
    return DecodedImage(rgb_image(image, max_pixels=MAX_PIXELS, param=param), size)


def _data_url(url: str, param: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise OnnxBadInput("a data URL image must be base64 encoded", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OnnxBadInput("the data URL's base64 is invalid", param=param) from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise OnnxBadInput(f"the image is larger than {MAX_IMAGE_BYTES} bytes", param=param)
    return data


async def fetch_image(
    url: str, fetcher: GuardedFetcher | None = None, *, param: str = "messages"
) -> bytes:
    """The bytes of the image at `url`: a data URL, or http(s) through `fetcher` (one with no
    allow-list, a 15 s timeout and the image cap when none is given)."""
    if url.startswith("data:"):
        return _data_url(url, param)
    if not url.startswith(("http://", "https://")):
        raise OnnxBadInput("the image URL must be a data: or http(s): URL", param=param)
    try:
        data, _ = await (fetcher or _default_fetcher()).fetch(url, accept=_FETCHED_TYPES)
    except FETCH_ERRORS as exc:
        raise OnnxBadInput(unusable_url(exc, "image"), param=param) from exc
    return data


def image_fetcher(allow: Sequence[str] = ()) -> GuardedFetcher:
    """The guarded fetcher for image URLs: `allow` lists the hosts or networks it may reach
    despite the private-address rules."""
    return GuardedFetcher(allow, max_bytes=MAX_IMAGE_BYTES, timeout_s=_FETCH_TIMEOUT_S)


@functools.cache
def _default_fetcher() -> GuardedFetcher:
    # One per process, built on first use: its TLS context (the CA bundle) takes ~20 ms.
    return image_fetcher()
