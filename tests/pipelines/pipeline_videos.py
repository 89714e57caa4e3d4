"""Small real videos encoded with PyAV, for the frame-sampling and summary tests."""

from __future__ import annotations

import io

import av
import numpy as np


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


def config_with_primary(model: str) -> str:
    """A litellm_config.yaml routing video-summarization to `model` first, GPT-4o second."""
    return (
        "model_list:\n"
        "  - model_name: video-summarization\n"
        f"    litellm_params: {{model: {model}}}\n"
        "  - model_name: video-summarization-gpt-4o\n"
        "    litellm_params: {model: openai/gpt-4o}\n"
        "router_settings:\n"
        "  fallbacks:\n"
        "    - video-summarization: [video-summarization-gpt-4o]\n"
    )
