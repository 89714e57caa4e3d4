"""Small real videos encoded with PyAV, for the frame-sampling and summary tests."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image


def encode_video(frames: int, width: int, height: int, *, fps: int = 30, fmt: str = "mp4") -> bytes:
    """A video of `frames` frames whose frame i is a flat grey of level i % 256."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Without a first frame nothing would write the header: an empty file, not a video.
        container.start_encoding()
        for i in range(frames):
            pixels = np.full((height, width, 3), i % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


# One colour per shot: shots differ in hue as well as texture, as real cuts mostly do.
_PALETTE = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 210, 40), (200, 40, 200)]


def encode_shots(lengths: list[int], width: int = 160, height: int = 90, *, fps: int = 25) -> bytes:
    """A video of hard cuts: shot k is `lengths[k]` frames of its own tinted random texture
    panning right a pixel a frame, so frames change smoothly within a shot, abruptly between."""
    out = io.BytesIO()
    rng = np.random.default_rng(7)
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 2_000_000
        container.start_encoding()
        for k, length in enumerate(lengths):
            coarse = rng.integers(0, 256, (height // 16 + 2, (width + length) // 16 + 2))
            texture = Image.fromarray(coarse.astype(np.uint8)).resize(
                (width + length, height), Image.Resampling.BICUBIC
            )
            tint = np.array(_PALETTE[k % len(_PALETTE)], dtype=np.float32) / 255
            pixels = (np.asarray(texture, dtype=np.float32)[:, :, None] * tint).astype(np.uint8)
            for i in range(length):
                frame = np.ascontiguousarray(pixels[:, i : i + width])
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def config_with_primary(model: str, fallback: str | None = "openai/gpt-4o") -> str:
    """A litellm_config.yaml routing video-summarization to `model` first, then `fallback`
    (GPT-4o unless None: no fallback)."""
    config = (
        "model_list:\n"
        "  - model_name: video-summarization\n"
        f"    litellm_params: {{model: {model}}}\n"
    )
    if fallback is None:
        return config
    return config + (
        "  - model_name: video-summarization-fallback\n"
        f"    litellm_params: {{model: {fallback}}}\n"
        "router_settings:\n"
        "  fallbacks:\n"
        "    - video-summarization: [video-summarization-fallback]\n"
    )
