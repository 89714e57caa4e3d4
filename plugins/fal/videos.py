"""Pure transforms between the OpenAI videos API and Fal's image-to-video models (no I/O).

Why it exists: an OpenAI ``videos.create`` carries a prompt, an input image, ``seconds`` and
``size``; Fal's Kling and Veo image-to-video endpoints each take their own duration vocabulary
(Kling ``"5"``/``"10"``, Veo ``"4s"``/``"6s"``/``"8s"``) and only Veo an aspect ratio and a
resolution. Every rule of that translation is a function here, checked before anything is sent.

``seconds``: OpenAI's 4, 8, 12 and the models' own 5, 6, 10 are accepted; each model renders
the duration it has nearest to the one asked (ties go to the longer), and the video reports
the duration served. ``size``: OpenAI's four sizes and 1920x1080 / 1080x1920; Veo gets the
aspect ratio (16:9 or 9:16) and resolution (720p, 1080p) of it, Kling follows the input
image's shape. No size: Veo's ``auto`` aspect at 720p, and the input image's size reported.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from PIL import Image, UnidentifiedImageError

from plugins.fal.errors import FalInvalidRequest, FalJobFailed, FalProtocolError
from plugins.fal.transforms import QueueStatus, app_of

__all__ = [
    "SECONDS",
    "SIZES",
    "VideoFile",
    "VideoRequest",
    "family_of",
    "parse_video_request",
    "served_seconds",
    "video_input",
    "video_of",
    "video_progress",
]

SECONDS = (4, 5, 6, 8, 10, 12)
# size -> (aspect ratio, resolution) as Veo names them.
SIZES: Mapping[str, tuple[str, str]] = {
    "720x1280": ("9:16", "720p"),
    "1280x720": ("16:9", "720p"),
    "1024x1792": ("9:16", "1080p"),
    "1792x1024": ("16:9", "1080p"),
    "1080x1920": ("9:16", "1080p"),
    "1920x1080": ("16:9", "1080p"),
}
_DURATIONS: Mapping[str, tuple[int, ...]] = {"kling": (5, 10), "veo": (4, 6, 8)}
_MAX_PROMPT = 2500
_PERCENT = re.compile(r"(\d{1,3})\s*%")
_STEP = re.compile(r"(\d+)\s*/\s*(\d+)")
Family = Literal["kling", "veo"]
VideoStatus = Literal["queued", "in_progress", "completed", "failed"]


class VideoRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One validated image-to-video request."""

    prompt: str
    # A data URI of the uploaded image, or the http(s) URL the client gave.
    image_url: str
    seconds: int
    size: str | None
    # The input image's pixel size when it was uploaded (None for a URL).
    image_size: tuple[int, int] | None = None
    negative_prompt: str | None = None
    seed: int | None = None

    @property
    def reported_size(self) -> str:
        if self.size is not None:
            return self.size
        if self.image_size is not None:
            return f"{self.image_size[0]}x{self.image_size[1]}"
        return "auto"


class VideoFile(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    content_type: str = "video/mp4"
    file_size: int | None = None


def _bad(message: str, param: str) -> FalInvalidRequest:
    return FalInvalidRequest(message, param=param)


def _image(data: bytes) -> tuple[str, tuple[int, int]]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size, kind = image.size, (image.format or "png").lower()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise _bad("'input_reference' is not an image that decodes", "input_reference") from exc
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}", size


def _seconds(value: Any) -> int:
    if value is None or value == "":
        return 4
    text = str(value).strip().removesuffix("s")
    if not text.isdigit() or int(text) not in SECONDS:
        allowed = ", ".join(str(s) for s in SECONDS)
        raise _bad(f"unsupported seconds {value!r}: use one of {allowed}", "seconds")
    return int(text)


def parse_video_request(
    fields: Mapping[str, Any], image: bytes | None, image_url: str | None = None
) -> VideoRequest:
    """Validate a videos.create form: ``image`` is the uploaded ``input_reference``'s bytes,
    ``image_url`` the URL given instead (``input_reference[image_url]``)."""
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _bad("'prompt' is required and must be a non-empty string", "prompt")
    if len(prompt) > _MAX_PROMPT:
        raise _bad(f"'prompt' must be at most {_MAX_PROMPT} characters", "prompt")
    image_size = None
    if image is not None:
        url, image_size = _image(image)
    elif image_url is not None and image_url.startswith("data:") and ";base64," in image_url:
        try:
            decoded = base64.b64decode(image_url.split(",", 1)[1], validate=True)
        except ValueError as exc:
            raise _bad("'input_reference' is not valid base64", "input_reference") from exc
        url, image_size = _image(decoded)
    elif image_url is not None and image_url.startswith(("https://", "http://")):
        url = image_url
    elif image_url is not None:
        raise _bad("'input_reference.image_url' must be an http(s) or data URL", "input_reference")
    else:
        raise _bad("an input image ('input_reference') is required", "input_reference")
    size = fields.get("size") or None
    if size is not None and size not in SIZES:
        raise _bad(f"unsupported size {size!r}: use one of {', '.join(SIZES)}", "size")
    negative = fields.get("negative_prompt")
    seed = fields.get("seed")
    try:
        seed_value = int(seed) if seed not in (None, "") else None
    except (TypeError, ValueError):
        raise _bad("'seed' must be an integer", "seed") from None
    return VideoRequest(
        prompt=prompt,
        image_url=url,
        seconds=_seconds(fields.get("seconds")),
        size=size,
        image_size=image_size,
        negative_prompt=negative if isinstance(negative, str) and negative else None,
        seed=seed_value,
    )


def family_of(model: str) -> Family:
    """Which input vocabulary the Fal endpoint speaks."""
    app = app_of(model)
    if "kling" in app:
        return "kling"
    if "veo" in app:
        return "veo"
    raise _bad(f"no image-to-video transform for {app!r}", "model")


def served_seconds(request: VideoRequest, model: str) -> int:
    """The duration ``model`` renders for the request: its nearest (ties: the longer)."""
    durations = _DURATIONS[family_of(model)]
    return min(durations, key=lambda d: (abs(d - request.seconds), -d))


def video_input(request: VideoRequest, model: str) -> dict[str, Any]:
    """The Fal input for ``model`` (Kling or Veo image-to-video)."""
    family = family_of(model)
    seconds = served_seconds(request, model)
    body: dict[str, Any] = {"prompt": request.prompt, "image_url": request.image_url}
    if request.negative_prompt is not None:
        body["negative_prompt"] = request.negative_prompt
    if family == "kling":
        body["duration"] = str(seconds)
        return body
    aspect, resolution = SIZES[request.size] if request.size else ("auto", "720p")
    body |= {"duration": f"{seconds}s", "aspect_ratio": aspect, "resolution": resolution}
    if request.seed is not None:
        body["seed"] = request.seed
    return body


def video_of(result: Any) -> VideoFile:
    """The generated video of a Fal result (``{"video": File}``)."""
    if not isinstance(result, Mapping) or not isinstance(result.get("video"), Mapping):
        raise FalProtocolError("Fal result has no 'video' file")
    video = result["video"]
    if not video.get("url"):
        raise FalJobFailed("Fal returned no video")
    size = video.get("file_size")
    return VideoFile(
        url=str(video["url"]),
        content_type=str(video.get("content_type") or "video/mp4"),
        file_size=size if isinstance(size, int) else None,
    )


def video_progress(status: QueueStatus, previous: int = 0) -> tuple[VideoStatus, int]:
    """The OpenAI status and percent for a Fal queue status: 0 while queued, the last
    percentage (or ``n/m`` step) of the logs while running (1-99, never going back), 100 when
    done."""
    if status.state == "IN_QUEUE":
        return "queued", 0
    if status.state == "COMPLETED":
        return ("failed", previous) if status.error else ("completed", 100)
    percent = None
    for line in reversed(status.logs):
        if (match := _PERCENT.search(line)) is not None:
            percent = int(match[1])
            break
        if (step := _STEP.search(line)) is not None and int(step[2]) > 0:
            percent = int(step[1]) * 100 // int(step[2])
            break
    return "in_progress", max(previous, min(99, max(1, percent or 1)))
