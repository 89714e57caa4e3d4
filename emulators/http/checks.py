"""Mechanics the emulators share to refuse what the real APIs refuse.

Why it exists: a test that passes against an emulator must also pass against the provider, so
each emulator checks parameter ranges, images, context length and tool turns like its real
counterpart. The rules and the wording differ per provider (each provider's ``rules`` module),
but decoding an image, estimating tokens and looking a model up in a limits table are the same
for all three, so they live here once.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

from emulators.http.errors import BadRequestBody

__all__ = [
    "ImageInfo",
    "ValidationFailure",
    "by_model",
    "decode_base64",
    "inspect_image",
    "is_number",
    "parse_data_url",
]


class ValidationFailure(BadRequestBody):
    """A request the real API refuses; rendered in the provider's own error shape.

    ``param`` and ``code`` fill OpenAI's error fields (the other providers put everything in
    the message); ``status`` is 400 for every refusal modelled so far except body size (413).
    """

    retriable = False

    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message, param)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image's bytes turned out to be."""

    # Pillow's format name in lower case: "png", "jpeg", "gif", "webp", ...
    format: str
    width: int
    height: int

    @property
    def mime_type(self) -> str:
        return f"image/{self.format}"


def decode_base64(text: object) -> bytes | None:
    """The bytes of standard or URL-safe base64 ``text`` (padding optional), None if invalid."""
    if not isinstance(text, str):
        return None
    normal = "".join(text.split()).replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def inspect_image(data: bytes) -> ImageInfo | None:
    """Format and size of ``data`` when its header parses and its structure verifies, else None.

    ``verify`` walks the chunks (and checks PNG CRCs) without decoding every pixel, so even a
    large image costs little; truncated or random bytes fail here as they do at the provider.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            kind = (image.format or "").lower()
            image.verify()
    # DecompressionBombWarning is raised, not just warned, when warnings are errors.
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, RuntimeWarning):
        return None
    return ImageInfo(kind, width, height) if kind else None


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 payload) of a ``data:<type>;base64,<payload>`` URL, else None."""
    head, comma, payload = url.partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        return None
    return head.removeprefix("data:").removesuffix(";base64"), payload


def is_number(value: object) -> bool:
    """A JSON number (booleans are not numbers to any of the real APIs)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def by_model(model: str, table: Mapping[str, int], default: int) -> int:
    """The value of the longest key of ``table`` that ``model`` starts with, else ``default``.

    Model names carry dates and suffixes (``claude-sonnet-4-20250514``, ``gpt-4o-2024-08-06``);
    keys are families, and the most specific family wins (``gpt-4o-mini`` over ``gpt-4o``).
    """
    best = ""
    for prefix in table:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return table[best] if best else default
