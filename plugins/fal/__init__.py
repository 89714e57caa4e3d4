"""Fal.ai provider plugin: Flux text-to-image with any number of LoRAs, edits, LoRA training,
vision and image-to-video (Kling, Veo), over Fal's queue.

``provider.FalImages`` is the thin I/O class (submit, status stream, result, cancel);
``transforms`` (and ``edits``, ``training``, ``vision``, ``videos``) hold the pure
OpenAI <-> Fal translations; ``errors`` the plugin's error tree
and the one place Fal's answers and transport failures are mapped into it.
"""

from plugins.fal.errors import (
    FalAuthError,
    FalBadRequest,
    FalError,
    FalInvalidRequest,
    FalJobFailed,
    FalNotFound,
    FalProtocolError,
    FalRateLimited,
    FalServerError,
    FalTimeout,
    FalUnavailable,
    FalValidationError,
)
from plugins.fal.provider import FalImages, FalJob
from plugins.fal.transforms import ImageRequest, Lora, parse_image_request
from plugins.fal.videos import VideoFile, VideoRequest, parse_video_request

__all__ = [
    "FalAuthError",
    "FalBadRequest",
    "FalError",
    "FalImages",
    "FalInvalidRequest",
    "FalJob",
    "FalJobFailed",
    "FalNotFound",
    "FalProtocolError",
    "FalRateLimited",
    "FalServerError",
    "FalTimeout",
    "FalUnavailable",
    "FalValidationError",
    "ImageRequest",
    "Lora",
    "VideoFile",
    "VideoRequest",
    "parse_image_request",
    "parse_video_request",
]
