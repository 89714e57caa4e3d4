"""What the emulated Fal models compute: images from prompt, seed, LoRAs and input images,
trained LoRAs, vision answers and image-to-video clips.

Why it exists: the app module routes the queue protocol; the outputs (real files, determined
by the inputs, input images fetched only from data URIs or this emulator's own files) are
computed here.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from emulators.fal.queue import FalQueue
from emulators.fal.render import (
    content_type,
    image_digest,
    render_edit,
    render_image,
    result_body,
)
from emulators.fal.video import VIDEO_MODELS, parse_video_input, render_video
from emulators.fal.vision import DETECT_MODELS, SEGMENT_MODELS, detect, segment
from emulators.fal.wire import (
    FLUX_MODELS,
    TRAINING_MODELS,
    FluxInput,
    TrainingInput,
    ValidationFailed,
    parse_flux_input,
    parse_training_input,
)

__all__ = ["NSFW_MARKER", "SERVED_MODELS", "Outcome", "generate", "load_sources", "run_model"]

# A prompt holding this is "flagged": has_nsfw_concepts is true and, with the safety checker
# on, the image is black, as Fal sends it.
NSFW_MARKER = "[[nsfw]]"
Sources = tuple[Image.Image | None, Image.Image | None]
# Every endpoint the emulator answers, by "owner/app[/path]".
SERVED_MODELS = (
    frozenset(FLUX_MODELS) | TRAINING_MODELS | DETECT_MODELS | SEGMENT_MODELS | set(VIDEO_MODELS)
)


def seed_of(prompt: str, seed: int | None) -> int:
    if seed is not None:
        return seed
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _fetch(queue: FalQueue, url: str) -> bytes | None:
    """A file from a data URI or one this emulator served; the emulator reaches no other host."""
    if url.startswith("data:") and ";base64," in url:
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=True)
        except ValueError:
            return None
    if "/files/" in url:
        request_id, _, name = url.split("/files/", 1)[1].partition("/")
        found = queue.file(request_id, name)
        return found[1] if found is not None else None
    return None


def _download(queue: FalQueue, url: str, field: str) -> Image.Image:
    """An input image from a data URI or from a file this emulator served."""
    data = _fetch(queue, url)
    if data is None:
        raise ValidationFailed(
            [
                {
                    "loc": ["body", field],
                    "msg": "Failed to download the file",
                    "type": "file_download_error",
                }
            ]
        )
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValidationFailed(
            [{"loc": ["body", field], "msg": f"Invalid image: {exc}", "type": "image_load_error"}]
        ) from exc
    return image


def load_sources(queue: FalQueue, spec: FluxInput) -> Sources:
    image = _download(queue, spec.image_url, "image_url") if spec.image_url else None
    mask = _download(queue, spec.mask_url, "mask_url") if spec.mask_url else None
    return image, mask


def generate(
    base: str,
    request_id: str,
    spec: FluxInput,
    sources: Sources,
    run_s: float,
) -> tuple[tuple[int, dict[str, Any]], dict[str, tuple[str, bytes]]]:
    """The result body and the files it points at."""
    source, mask = sources
    if source is not None and not spec.size_given:
        spec = dataclasses.replace(spec, width=source.width, height=source.height)
    seed = seed_of(spec.prompt, spec.seed)
    nsfw = NSFW_MARKER in spec.prompt
    images, files, kind = [], {}, content_type(spec.output_format)
    for index in range(spec.num_images):
        black = nsfw and spec.enable_safety_checker
        digest = image_digest(spec, seed, index)
        if source is not None and not black:
            size = (spec.width, spec.height)
            data = render_edit(
                digest, source, mask, strength=spec.strength, size=size, fmt=spec.output_format
            )
        else:
            data = render_image(digest, spec.width, spec.height, spec.output_format, black=black)
        name = f"{index}.{spec.output_format}"
        files[name] = (kind, data)
        url = (
            f"data:{kind};base64,{base64.b64encode(data).decode()}"
            if spec.sync_mode
            else f"{base}/files/{request_id}/{name}"
        )
        images.append(
            {"url": url, "width": spec.width, "height": spec.height, "content_type": kind}
        )
    body = result_body(spec, seed, images, [nsfw] * spec.num_images, round(run_s, 3))
    return (200, body), files


@dataclass(frozen=True, slots=True)
class Outcome:
    """A model's finished answer, the files it serves, and how long it "runs"."""

    result: tuple[int, dict[str, Any]]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    # None: the queue's configured duration.
    run_s: float | None = None
    steps: int | None = None


def run_model(endpoint: str, body: Any, base: str, request_id: str, queue: FalQueue) -> Outcome:
    """The outcome of ``endpoint`` on ``body``; invalid input fails the job with Fal's 422."""
    try:
        if endpoint in FLUX_MODELS:
            spec = parse_flux_input(body, endpoint)
            sources = load_sources(queue, spec)
            result, files = generate(base, request_id, spec, sources, queue.timings.run_s)
            return Outcome(result=result, files=files)
        if endpoint in DETECT_MODELS | SEGMENT_MODELS:
            return _vision(endpoint, body, base, request_id, queue)
        if endpoint in VIDEO_MODELS:
            return _video(endpoint, body, base, request_id, queue)
        training = parse_training_input(body)
        result, files = train(base, request_id, training, _download_bytes(queue, training))
        return Outcome(result, files, run_s=queue.timings.training_s, steps=training.steps)
    except ValidationFailed as exc:
        # The queue accepts any JSON; the model's 422 comes with the result, as on Fal.
        return Outcome(result=(422, {"detail": exc.detail}), run_s=0.0)


def _vision(endpoint: str, body: Any, base: str, request_id: str, queue: FalQueue) -> Outcome:
    if not isinstance(body, dict):
        raise ValidationFailed([{"loc": ["body"], "msg": "Input should be an object", "type": "x"}])
    url = body.get("image_url")
    if not isinstance(url, str) or not url:
        raise ValidationFailed(
            [{"loc": ["body", "image_url"], "msg": "Field required", "type": "missing"}]
        )
    image = _download(queue, url, "image_url")
    data = _fetch(queue, url) or b""
    if endpoint in DETECT_MODELS:
        return Outcome(result=(200, detect(body, image, data)))
    result, files = segment(body, image, data)
    for mask in result["masks"]:
        mask["url"] = f"{base}/files/{request_id}/{mask['file_name']}"
    return Outcome(result=(200, result), files=files)


def _video(endpoint: str, body: Any, base: str, request_id: str, queue: FalQueue) -> Outcome:
    prompt, image_url, seconds, aspect, seed = parse_video_input(endpoint, body)
    data = render_video(prompt, _download(queue, image_url, "image_url"), seconds, aspect, seed)
    video = {
        "url": f"{base}/files/{request_id}/output.mp4",
        "content_type": "video/mp4",
        "file_name": "output.mp4",
        "file_size": len(data),
    }
    return Outcome(result=(200, {"video": video}), files={"output.mp4": ("video/mp4", data)})


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _download_bytes(queue: FalQueue, spec: TrainingInput) -> bytes:
    url = spec.images_data_url
    data = _fetch(queue, url)
    if data is None:
        raise ValidationFailed([_loc_error("images_data_url", "Failed to download the file")])
    return data


def _loc_error(name: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": message, "type": "file_download_error"}


def train(
    base: str, request_id: str, spec: TrainingInput, archive: bytes
) -> tuple[tuple[int, dict[str, Any]], dict[str, tuple[str, bytes]]]:
    """A "trained" LoRA: a small safetensors file determined by the archive and settings."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            images = [n for n in zipped.namelist() if n.lower().endswith(_IMAGE_SUFFIXES)]
    except zipfile.BadZipFile as exc:
        raise ValidationFailed([_loc_error("images_data_url", "not a zip archive")]) from exc
    if not images:
        raise ValidationFailed([_loc_error("images_data_url", "the archive holds no images")])
    digest = hashlib.sha256(archive + f"{spec.trigger_word}:{spec.steps}".encode()).hexdigest()
    header = json.dumps({"__metadata__": {"trigger_word": spec.trigger_word or "", "id": digest}})
    weights = len(header).to_bytes(8, "little") + header.encode() + bytes.fromhex(digest) * 32
    config = json.dumps({"steps": spec.steps, "images": len(images), "is_style": spec.is_style})
    files = {
        "pytorch_lora_weights.safetensors": ("application/octet-stream", weights),
        "config.json": ("application/json", config.encode()),
    }

    def described(name: str) -> dict[str, Any]:
        kind, data = files[name]
        url = f"{base}/files/{request_id}/{name}"
        return {"url": url, "content_type": kind, "file_name": name, "file_size": len(data)}

    body = {
        "diffusers_lora_file": described("pytorch_lora_weights.safetensors"),
        "config_file": described("config.json"),
    }
    return (200, body), files
