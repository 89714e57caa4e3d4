"""The checks every image model runs on a decoded image before resizing it.

Why it exists: `faces` and `masks` are called with images decoded elsewhere (an HTTP request,
a Kafka event, a test), and each must refuse the same bad images the same way, with a 400 that
names the field: no pixels, more pixels than the configured limit, a mode with no RGB meaning.
"""

from __future__ import annotations

from PIL import Image

from plugins.onnx.errors import OnnxBadInput

__all__ = ["MAX_PIXELS", "check_image", "rgb_image"]

MAX_PIXELS = 40_000_000  # the same default as the decoder's: 40 MP, far below a bomb
# Modes whose conversion to RGB invents nothing: bilevel, grey, palette, alpha (dropped),
# CMYK, YCbCr; 32-bit integer and float images ("I", "F") have no colour meaning.
_CONVERTIBLE = frozenset(
    {"RGB", "RGBA", "RGBX", "1", "L", "LA", "P", "PA", "CMYK", "YCbCr", "I;16"}
)


def rgb_image(image: Image.Image, *, max_pixels: int, param: str = "image") -> Image.Image:
    """`image` as RGB, or OnnxBadInput naming `param` if no model should read it."""
    check_image(image, max_pixels=max_pixels, param=param)
    return image if image.mode == "RGB" else image.convert("RGB")


def check_image(image: Image.Image, *, max_pixels: int, param: str = "image") -> None:
    """OnnxBadInput naming `param` if no model should read `image`; reads only its size and
    mode, so an image opened but not decoded stays so (its header is checked before a pixel
    is decoded)."""
    width, height = image.size
    if width < 1 or height < 1:
        raise OnnxBadInput(f"the image has no pixels ({width}x{height})", param=param)
    if width * height > max_pixels:
        raise OnnxBadInput(
            f"the image is {width}x{height} ({width * height} pixels); at most {max_pixels}",
            param=param,
        )
    if image.mode not in _CONVERTIBLE:
        raise OnnxBadInput(
            f"image mode {image.mode!r} ({len(image.getbands())} channels) is not supported: "
            "send RGB, RGBA or greyscale",
            param=param,
        )
