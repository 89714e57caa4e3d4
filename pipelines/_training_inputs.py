"""The training images of a LoRA request as one zip: checked, or built from single images.

Why checked here: the provider only learns the archive is unusable after it was uploaded,
queued and billed; a member that is no image, a zip that is not one, or too few images are
refused before any call, naming the member. Decoding runs in a thread (Pillow is blocking).
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError

from pipelines._errors import ImageUndecodable, InputRefused

__all__ = ["IMAGE_SUFFIXES", "check_archive", "check_archive_async", "zip_async", "zip_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


def _decoded_format(data: bytes, name: str) -> str:
    """The image format of `data`, or ImageUndecodable naming `name`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.width < 1 or image.height < 1:
                raise ImageUndecodable(f"{name} has no pixels")
            return str(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageUndecodable(f"{name} is not an image that decodes") from exc


def check_archive(data: bytes, *, min_images: int, max_images: int, max_bytes: int) -> int:
    """The number of images in the zip `data`, each decoded; refused when it is not a zip,
    holds fewer than `min_images` or more than `max_images`, or unpacks beyond `max_bytes`."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zipped:
            members = [
                info
                for info in zipped.infolist()
                if not info.is_dir() and info.filename.lower().endswith(IMAGE_SUFFIXES)
            ]
            if len(members) < min_images:
                raise InputRefused(
                    f"the training archive holds {len(members)} images; at least"
                    f" {min_images} are needed"
                )
            if len(members) > max_images:
                raise InputRefused(f"the training archive holds more than {max_images} images")
            # Sizes from the directory first: a zip bomb is refused before it is unpacked.
            if sum(info.file_size for info in zipped.infolist()) > max_bytes:
                raise InputRefused(f"the training archive unpacks to more than {max_bytes} bytes")
            for info in members:
                _decoded_format(zipped.read(info), f"archive member {info.filename!r}")
    except zipfile.BadZipFile as exc:
        raise InputRefused("the training archive is not a zip file") from exc
    return len(members)


def _as_png(data: bytes) -> bytes:
    out = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def zip_images(images: Sequence[bytes]) -> bytes:
    """One zip of `images` (each decoded first; ImageUndecodable names its position)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zipped:
        for index, image in enumerate(images):
            kind = _decoded_format(image, f"training image {index}")
            # The provider reads PNG, JPEG and WebP members only (a GIF, a TIFF...).
            member = image if kind in _FORMAT_SUFFIX else _as_png(image)
            suffix = _FORMAT_SUFFIX.get(kind, ".png")
            zipped.writestr(f"image_{index:03d}{suffix}", member)
    return out.getvalue()


async def check_archive_async(
    data: bytes, *, min_images: int, max_images: int, max_bytes: int
) -> int:
    return await asyncio.to_thread(
        check_archive, data, min_images=min_images, max_images=max_images, max_bytes=max_bytes
    )


async def zip_async(images: Sequence[bytes]) -> bytes:
    return await asyncio.to_thread(zip_images, images)
