"""Tiny deterministic PNGs for emulated image output.

Why it exists: Gemini's image models answer with ``inlineData`` PNG parts; clients decode and
store them, so the emulator must send real, valid PNG bytes. Each image is a solid square whose
colour is derived from the request, so different prompts give distinguishable images.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

__all__ = ["solid_png"]

_SIDE = 8


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def solid_png(seed: str, side: int = _SIDE) -> bytes:
    """An RGB PNG of ``side`` x ``side`` pixels in a colour chosen by ``seed``."""
    rgb = hashlib.sha256(seed.encode()).digest()[:3]
    row = b"\x00" + rgb * side  # filter byte 0 (None) then the pixels
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(row * side)),
            _chunk(b"IEND", b""),
        )
    )
