"""The emulated image-to-video models (Kling, Veo on Fal): small real H.264 MP4 clips.

Why it exists: clients decode what they download, so the emulator answers with real videos,
deterministic from the prompt, seed and input image: every frame is the input image (scaled
so that its long side is 64 px, or cropped to Veo's aspect ratio) panning sideways, with a
band across the top coloured by the prompt. ``FPS`` frames per second of the duration asked.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from typing import Any

import av
import numpy as np
from PIL import Image

from emulators.fal.wire import ValidationFailed

__all__ = ["FPS", "LONG_SIDE", "VIDEO_MODELS", "parse_video_input", "render_video"]

FPS = 4
LONG_SIDE = 64
# endpoint -> (accepted durations, accepted aspect ratios or None when the model has none).
VIDEO_MODELS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": (("5", "10"), None),
    "fal-ai/veo3.1/image-to-video": (("4s", "6s", "8s"), ("auto", "16:9", "9:16")),
    "fal-ai/veo3.1/fast/image-to-video": (("4s", "6s", "8s"), ("auto", "16:9", "9:16")),
}
_RESOLUTIONS = ("720p", "1080p", "4k")


def _invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed([{"loc": ["body", field], "msg": message, "type": kind}])


def parse_video_input(endpoint: str, body: Any) -> tuple[str, str, int, str | None, int | None]:
    """(prompt, image_url, seconds, aspect ratio, seed) of a valid input; Fal's 422 otherwise."""
    durations, aspects = VIDEO_MODELS[endpoint]
    if not isinstance(body, dict):
        raise _invalid("body", "Input should be an object")
    prompt, image_url = body.get("prompt"), body.get("image_url")
    if not isinstance(prompt, str) or not prompt:
        raise _invalid("prompt", "Field required", "missing")
    if not isinstance(image_url, str) or not image_url:
        raise _invalid("image_url", "Field required", "missing")
    duration = str(body.get("duration", durations[0]))
    if duration not in durations:
        raise _invalid("duration", f"Input should be {' or '.join(map(repr, durations))}")
    aspect = None
    if aspects is not None:
        aspect = str(body.get("aspect_ratio", "auto"))
        if aspect not in aspects:
            raise _invalid("aspect_ratio", f"Input should be one of {aspects}")
        if str(body.get("resolution", "720p")) not in _RESOLUTIONS:
            raise _invalid("resolution", f"Input should be one of {_RESOLUTIONS}")
    seed = body.get("seed")
    return prompt, image_url, int(duration.removesuffix("s")), aspect, seed


def _frame_size(image: Image.Image, aspect: str | None) -> tuple[int, int]:
    if aspect == "16:9":
        return LONG_SIDE, 36
    if aspect == "9:16":
        return 36, LONG_SIDE
    width, height = image.size
    scale = LONG_SIDE / max(width, height)
    # H.264 in yuv420p needs even sides.
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))


def render_video(
    prompt: str, image: Image.Image, seconds: int, aspect: str | None, seed: int | None
) -> bytes:
    """The MP4 of ``seconds * FPS`` frames derived from ``image``."""
    width, height = _frame_size(image, aspect)
    base = np.asarray(image.convert("RGB").resize((width, height)), dtype=np.uint8)
    digest = hashlib.sha256(f"{prompt}\n{seed}".encode()).digest()
    band = max(2, height // 8)
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One thread and fixed settings: the same input gives the same bytes.
        stream.options = {"preset": "ultrafast", "crf": "12", "threads": "1"}
        for index in range(seconds * FPS):
            frame = np.roll(base, index, axis=1).copy()
            frame[:band] = (digest[0], digest[1], digest[2])
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    return out.getvalue()
