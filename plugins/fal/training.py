"""Pure transforms for LoRA training (fal-ai/flux-lora-fast-training) as OpenAI fine-tuning.

Why it exists: an OpenAI ``fine_tuning.jobs.create`` names a training file and carries the
trigger word and step count in ``metadata`` (or ``hyperparameters``); Fal wants a zip URL and
those settings. The archive is checked here (a zip holding images) before anything is sent, and
Fal's queue states become OpenAI job states.
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from plugins.fal.errors import FalInvalidRequest, FalProtocolError
from plugins.fal.transforms import QueueStatus

__all__ = [
    "DEFAULT_STEPS",
    "TrainingRequest",
    "job_state",
    "lora_of",
    "parse_training",
    "training_input",
]

DEFAULT_STEPS = 1000
_MAX_STEPS = 10000
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class TrainingRequest(msgspec.Struct, frozen=True, kw_only=True):
    # A data URI of the uploaded zip, or the https URL the client gave.
    archive_url: str
    images: int | None
    trigger_word: str | None
    steps: int
    is_style: bool = False


def _setting(body: Mapping[str, Any], name: str) -> Any:
    for section in ("metadata", "hyperparameters"):
        value = (body.get(section) or {}).get(name)
        if value is not None:
            return value
    return None


def _images_in(archive: bytes) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            names = zipped.namelist()
    except zipfile.BadZipFile as exc:
        raise FalInvalidRequest(
            "the training file is not a zip archive", param="training_file"
        ) from exc
    images = sum(1 for name in names if name.lower().endswith(_IMAGE_SUFFIXES))
    if not images:
        raise FalInvalidRequest("the training archive holds no images", param="training_file")
    return images


def parse_training(body: Mapping[str, Any], archive: bytes | None) -> TrainingRequest:
    """Validate a fine-tuning job: ``archive`` is the uploaded file's bytes, or None when
    ``training_file`` is a URL of the zip."""
    steps_value = _setting(body, "steps")
    try:
        steps = int(steps_value) if steps_value is not None else DEFAULT_STEPS
    except (TypeError, ValueError):
        raise FalInvalidRequest("'steps' must be an integer", param="metadata.steps") from None
    if not 1 <= steps <= _MAX_STEPS:
        raise FalInvalidRequest(f"'steps' must be from 1 to {_MAX_STEPS}", param="metadata.steps")
    trigger = _setting(body, "trigger_word")
    if trigger is not None and not isinstance(trigger, str):
        raise FalInvalidRequest("'trigger_word' must be a string", param="metadata.trigger_word")
    is_style = str(_setting(body, "is_style") or "false").lower() == "true"
    if archive is not None:
        images = _images_in(archive)
        url = "data:application/zip;base64," + base64.b64encode(archive).decode()
    else:
        url = str(body.get("training_file") or "")
        if not url.startswith(("https://", "http://")):
            raise FalInvalidRequest(
                "'training_file' must be an uploaded file id or an http(s) URL of a zip",
                param="training_file",
            )
        images = None
    return TrainingRequest(
        archive_url=url, images=images, trigger_word=trigger, steps=steps, is_style=is_style
    )


def training_input(request: TrainingRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "images_data_url": request.archive_url,
        "steps": request.steps,
        "is_style": request.is_style,
    }
    if request.trigger_word:
        body["trigger_word"] = request.trigger_word
    return body


def job_state(status: QueueStatus, *, cancelled: bool) -> JobState:
    """The OpenAI job state for a Fal queue status (a result still decides success)."""
    if status.state == "IN_QUEUE":
        return "queued"
    if status.state == "IN_PROGRESS":
        return "running"
    if cancelled or status.error_type == "request_cancelled":
        return "cancelled"
    return "failed" if status.error else "succeeded"


def lora_of(result: Any) -> str:
    """The trained LoRA's URL: the ``fine_tuned_model`` clients pass as a LoRA path."""
    try:
        return str(result["diffusers_lora_file"]["url"])
    except (KeyError, TypeError) as exc:
        raise FalProtocolError("Fal training result has no diffusers_lora_file") from exc
