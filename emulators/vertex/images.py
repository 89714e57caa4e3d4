"""What the emulated image models paint: generations, multi-image edits and virtual try-ons.

Why it exists: a test of an image pipeline must be able to tell from the pixels that the
request was honoured, so every output is a real, decodable PNG or JPEG whose size follows the
requested aspect ratio and image size, whose pattern follows the prompt (different prompts,
seeds or inputs give different images), and which visibly uses its inputs: an edit or try-on
keeps the person image and paints each garment's dominant colour over the person's torso.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence

from PIL import Image, ImageOps

from emulators.fal.render import bands, encode

__all__ = [
    "ASPECT_RATIOS",
    "IMAGE_SIZES",
    "decode_image",
    "dominant_colour",
    "garment_region",
    "output_size",
    "paint",
]

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    text: (int(text.split(":")[0]), int(text.split(":")[1]))
    for text in ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
}
# Pixel budget per imageSize. 1K is the real ~1 MP; 2K and 4K are really ~4 and ~16 MP, but
# here they grow the side by 1.5x and 2x only, so a 4K answer stays cheap to paint, encode and
# move; the aspect ratio stays exact (width:height is the requested ratio times an integer).
IMAGE_SIZES: dict[str, int] = {"1K": 1024 * 1024, "2K": 1536 * 1536, "4K": 2048 * 2048}
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg"}
_HEADER_BANDS = 16  # the top 1/16 of an edit carries the prompt's colours


def output_size(ratio: tuple[int, int], image_size: str) -> tuple[int, int]:
    """(width, height) with exactly ``ratio`` and about the pixel budget of ``image_size``."""
    divisor = math.gcd(*ratio)
    width, height = ratio[0] // divisor, ratio[1] // divisor
    scale = max(1, math.isqrt(IMAGE_SIZES[image_size] // (width * height)))
    return width * scale, height * scale


def decode_image(data: bytes) -> Image.Image:
    """The decoded image; raises OSError / ValueError when the bytes are not an image."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def dominant_colour(image: Image.Image) -> tuple[int, int, int]:
    """The commonest colour, ignoring a near-white backdrop when anything else is there
    (product photos are garments on white)."""
    small = image.convert("RGB").resize((48, 48), Image.Resampling.NEAREST)
    counts = small.getcolors(maxcolors=48 * 48) or []
    ranked: list[tuple[int, int, int]] = [
        (int(c[0]), int(c[1]), int(c[2]))
        for _, c in sorted(counts, key=lambda pair: -pair[0])
        if isinstance(c, tuple)
    ]
    for colour in ranked:
        if min(colour) < 235:
            return colour
    return ranked[0]


def garment_region(width: int, height: int) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) an edit repaints: where a centred person's clothes are."""
    return width // 4, height // 3, width * 3 // 4, height * 5 // 6


def paint(
    seed: str,
    size: tuple[int, int],
    mime_type: str,
    *,
    person: Image.Image | None = None,
    garments: Sequence[Image.Image] = (),
    quality: int | None = None,
) -> bytes:
    """One output image.

    No input: bands coloured by ``seed``. A person (the first input image) and garments: the
    person, fitted to ``size``, with one vertical stripe per garment's dominant colour over
    the garment region and a header band coloured by ``seed``. A person alone (a plain edit):
    the person blended half-way towards the bands.
    """
    width, height = size
    digest = hashlib.sha256(seed.encode()).digest()
    if person is None:
        image = bands(digest, width, height)
    else:
        base = ImageOps.fit(person.convert("RGB"), size)
        if not garments:
            image = Image.blend(base, bands(digest, width, height), 0.5)
        else:
            image = base
            left, top, right, bottom = garment_region(width, height)
            stripe = (right - left) / len(garments)
            for index, garment in enumerate(garments):
                box = (
                    round(left + index * stripe),
                    top,
                    round(left + (index + 1) * stripe),
                    bottom,
                )
                image.paste(dominant_colour(garment), box)
            image.paste(bands(digest, width, max(1, height // _HEADER_BANDS)), (0, 0))
    fmt = _FORMATS.get(mime_type, "png")
    if fmt == "jpeg" and quality is not None:
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=max(1, min(100, quality)))
        return out.getvalue()
    return encode(image, fmt)
