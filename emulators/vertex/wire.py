"""Parse and validate Vertex AI request bodies: Gemini generateContent and try-on ``:predict``.

Why it exists: the gateway's bad-input handling and its config validation are only as good as
the upstream they are tested against, so the checks Vertex applies (safety enums with
``method``, imageConfig enums, input image count, size and decodability, candidateCount on
image models, the try-on parameters) live in pure functions here, returning typed requests or
raising BadRequestBody (answered with Google's 400 INVALID_ARGUMENT). The text and vision part of
generateContent is Gemini's, parsed by ``emulators.gemini.wire``. Both field spellings are
accepted (``inlineData.mimeType`` and the ``mime_type`` google-genai sends), as Google's JSON
parser accepts both.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from emulators.gemini.wire import parse_request
from emulators.http.content import Conversation
from emulators.http.errors import BadRequestBody
from emulators.vertex.images import ASPECT_RATIOS, IMAGE_SIZES, decode_image
from emulators.vertex.safety import HARM_CATEGORIES, HARM_METHODS, HARM_THRESHOLDS

__all__ = [
    "TRY_ON_MODELS",
    "GenerateRequest",
    "InputImage",
    "TryOnRequest",
    "is_image_model",
    "parse_generate",
    "parse_try_on",
    "pick",
]

TRY_ON_MODELS = frozenset({"virtual-try-on-001", "virtual-try-on-preview-08-04"})
_OUTPUT_MIME_TYPES = ("image/png", "image/jpeg")
_INLINE_LIMIT = 7 * 1024 * 1024  # per inline image, Gemini 3 Pro Image
_TRY_ON_LIMIT = 10 * 1024 * 1024
# Most input images a model accepts, by model-name prefix.
_MAX_IMAGES = {"gemini-3-pro-image": 14}
_MAX_TEXT_CANDIDATES = 8
_TRY_ON_SAFETY = ("block_low_and_above", "block_medium_and_above", "block_only_high", "block_none")
_PERSON_GENERATION = ("dont_allow", "allow_adult", "allow_all")
_UNDECODABLE = (
    "Unable to process input image. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)


def pick(mapping: Any, camel: str, snake: str, default: Any = None) -> Any:
    """Field ``camel`` or its ``snake`` spelling; ``default`` when absent or not an object."""
    if not isinstance(mapping, Mapping):
        return default
    if camel in mapping:
        return mapping[camel]
    return mapping.get(snake, default)


def is_image_model(model: str) -> bool:
    """Gemini models that can answer with images (gemini-3-pro-image-preview, ...-flash-image)."""
    return model.startswith("gemini-") and "-image" in model


@dataclass(frozen=True, slots=True)
class InputImage:
    mime_type: str
    # None for fileData parts: the emulator cannot fetch gs:// URIs, so it only counts them.
    image: Image.Image | None
    sha256: str


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    model: str
    conversation: Conversation
    thresholds: Mapping[str, str]
    images: tuple[InputImage, ...]
    wants_image: bool
    wants_text: bool
    # None: follow the first input image's shape (an edit), else 1:1.
    aspect_ratio: tuple[int, int] | None
    image_size: str
    output_mime: str
    quality: int | None
    candidate_count: int
    seed: int | None


@dataclass(frozen=True, slots=True)
class TryOnRequest:
    model: str
    person: Image.Image
    products: tuple[Image.Image, ...]
    input_digest: str
    prompt: str
    sample_count: int
    seed: int | None
    safety_setting: str
    output_mime: str
    quality: int | None


def _bytes(text: Any, where: str) -> bytes:
    # Google's parser takes standard and URL-safe base64 (google-genai sends URL-safe).
    if not isinstance(text, str):
        raise BadRequestBody(f"Invalid value at '{where}' (TYPE_BYTES), must be a string")
    try:
        normal = text.replace("-", "+").replace("_", "/")
        return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestBody(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for {text[:20]!r}"
        ) from exc


def _image(data: bytes, where: str, limit: int) -> Image.Image:
    if len(data) > limit:
        raise BadRequestBody(
            f"{where}: the image is {len(data)} bytes; inline images may be at most "
            f"{limit // (1024 * 1024)} MB"
        )
    try:
        return decode_image(data)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadRequestBody(f"{_UNDECODABLE} ({where})") from exc


def _input_images(contents: list[Any]) -> tuple[InputImage, ...]:
    found: list[InputImage] = []
    for i, content in enumerate(contents):
        for j, part in enumerate(pick(content, "parts", "parts", []) or []):
            where = f"contents[{i}].parts[{j}]"
            inline = pick(part, "inlineData", "inline_data")
            files = pick(part, "fileData", "file_data")
            if isinstance(inline, Mapping):
                mime = str(pick(inline, "mimeType", "mime_type", ""))
                if not mime.startswith("image/"):
                    continue  # documents, audio and video are read as text-only context
                data = _bytes(inline.get("data"), f"{where}.inline_data.data")
                image = _image(data, where, _INLINE_LIMIT)
                found.append(InputImage(mime, image, hashlib.sha256(data).hexdigest()))
            elif isinstance(files, Mapping):
                uri = str(pick(files, "fileUri", "file_uri", ""))
                mime = str(pick(files, "mimeType", "mime_type", ""))
                if mime.startswith("image/"):
                    found.append(InputImage(mime, None, hashlib.sha256(uri.encode()).hexdigest()))
    return tuple(found)


def _thresholds(body: Mapping[str, Any], version: str) -> dict[str, str]:
    settings = pick(body, "safetySettings", "safety_settings", []) or []
    if not isinstance(settings, list):
        raise BadRequestBody("Invalid value at 'safety_settings': must be a list")
    proto = f"type.googleapis.com/google.cloud.aiplatform.{version}"
    result: dict[str, str] = {}
    for index, setting in enumerate(settings):
        where = f"safety_settings[{index}]"
        category = pick(setting, "category", "category")
        threshold = pick(setting, "threshold", "threshold")
        method = pick(setting, "method", "method")
        if category not in HARM_CATEGORIES:
            raise BadRequestBody(
                f"Invalid value at '{where}.category' ({proto}.HarmCategory), \"{category}\""
            )
        if threshold not in HARM_THRESHOLDS:
            raise BadRequestBody(
                f"Invalid value at '{where}.threshold' "
                f'({proto}.SafetySetting.HarmBlockThreshold), "{threshold}"'
            )
        if method is not None and method not in HARM_METHODS:
            raise BadRequestBody(
                f"Invalid value at '{where}.method' ({proto}.SafetySetting.HarmBlockMethod), "
                f'"{method}"'
            )
        result[str(category)] = str(threshold)
    return result


def _image_config(config: Mapping[str, Any]) -> tuple[tuple[int, int] | None, str, str, int | None]:
    image_config = pick(config, "imageConfig", "image_config", {}) or {}
    ratio_text = pick(image_config, "aspectRatio", "aspect_ratio")
    if ratio_text is not None and ratio_text not in ASPECT_RATIOS:
        raise BadRequestBody(
            f"Unsupported aspect ratio {ratio_text!r}; supported: {', '.join(ASPECT_RATIOS)}"
        )
    size = pick(image_config, "imageSize", "image_size", "1K")
    if size not in IMAGE_SIZES:
        raise BadRequestBody(f"Unsupported image size {size!r}; supported: 1K, 2K, 4K")
    options = pick(image_config, "imageOutputOptions", "image_output_options", {}) or {}
    mime = pick(options, "mimeType", "mime_type", "image/png")
    if mime not in _OUTPUT_MIME_TYPES:
        raise BadRequestBody(f"Unsupported output mime type {mime!r}")
    quality = pick(options, "compressionQuality", "compression_quality")
    ratio = ASPECT_RATIOS[ratio_text] if ratio_text is not None else None
    return ratio, str(size), str(mime), int(quality) if quality is not None else None


def parse_generate(model: str, body: Mapping[str, Any], version: str) -> GenerateRequest:
    """The typed generateContent request, or BadRequestBody with Vertex's complaint."""
    thresholds = _thresholds(body, version)
    # Gemini's parser knows only the Gemini API's harm categories; Vertex's were checked above.
    gemini_body = {k: v for k, v in body.items() if k not in ("safetySettings", "safety_settings")}
    conversation = dataclasses.replace(parse_request(model, gemini_body), provider="vertex")
    config = pick(body, "generationConfig", "generation_config", {}) or {}
    modalities = {
        str(m).upper() for m in pick(config, "responseModalities", "response_modalities", []) or []
    }
    wants_image = "IMAGE" in modalities
    image_model = is_image_model(model)
    if wants_image and not image_model:
        raise BadRequestBody("Multi-modal output is not supported.")
    count = int(pick(config, "candidateCount", "candidate_count", 1) or 1)
    if image_model and count > 1:
        raise BadRequestBody(f"Multiple candidates is not enabled for models/{model}")
    if not 1 <= count <= _MAX_TEXT_CANDIDATES:
        raise BadRequestBody(
            f"Unable to submit request because candidateCount must be between 1 and "
            f"{_MAX_TEXT_CANDIDATES} but the entered value was {count}."
        )
    images = _input_images(list(body.get("contents") or []))
    for prefix, most in _MAX_IMAGES.items():
        if model.startswith(prefix) and len(images) > most:
            raise BadRequestBody(
                f"The request has {len(images)} images; {model} accepts at most {most} images."
            )
    ratio, size, mime, quality = _image_config(config)
    seed = pick(config, "seed", "seed")
    return GenerateRequest(
        model=model,
        conversation=dataclasses.replace(conversation, wants_image=wants_image),
        thresholds=thresholds,
        images=images,
        wants_image=wants_image,
        wants_text=not modalities or "TEXT" in modalities,
        aspect_ratio=ratio,
        image_size=size,
        output_mime=mime,
        quality=quality,
        candidate_count=count,
        seed=int(seed) if seed is not None else None,
    )


def _try_on_image(holder: Any, where: str) -> tuple[Image.Image, bytes]:
    image = pick(holder, "image", "image")
    if not isinstance(image, Mapping):
        raise BadRequestBody(f"{where}.image is required")
    if pick(image, "gcsUri", "gcs_uri") is not None:
        raise BadRequestBody(f"{where}.image.gcsUri: the emulator reads only bytesBase64Encoded")
    data = _bytes(
        pick(image, "bytesBase64Encoded", "bytes_base64_encoded"),
        f"{where}.image.bytesBase64Encoded",
    )
    return _image(data, where, _TRY_ON_LIMIT), data


def _choice(value: Any, allowed: tuple[str, ...], default: str, name: str) -> str:
    text = default if value is None else str(value).lower()  # the API ignores case here
    if text not in allowed:
        raise BadRequestBody(f"parameters.{name}: {value!r} is not one of {', '.join(allowed)}")
    return text


def parse_try_on(model: str, body: Mapping[str, Any]) -> TryOnRequest:
    """The typed virtual try-on request, or BadRequestBody."""
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1:
        raise BadRequestBody("instances: exactly one instance is required")
    instance = instances[0]
    person, person_bytes = _try_on_image(
        pick(instance, "personImage", "person_image"), "instances[0].personImage"
    )
    products = pick(instance, "productImages", "product_images")
    if not isinstance(products, list) or len(products) != 1:
        raise BadRequestBody("instances[0].productImages: exactly one product image is supported")
    product, product_bytes = _try_on_image(products[0], "instances[0].productImages[0]")
    params = body.get("parameters") or {}
    count = int(pick(params, "sampleCount", "sample_count", 1))
    if not 1 <= count <= 4:
        raise BadRequestBody(f"parameters.sampleCount: must be between 1 and 4, got {count}")
    seed = pick(params, "seed", "seed")
    if seed is not None and pick(params, "addWatermark", "add_watermark", True):
        raise BadRequestBody("parameters.seed: a seed is not supported when addWatermark is true")
    _choice(
        pick(params, "personGeneration", "person_generation"),
        _PERSON_GENERATION,
        "allow_adult",
        "personGeneration",
    )
    options = pick(params, "outputOptions", "output_options", {}) or {}
    mime = pick(options, "mimeType", "mime_type", "image/png")
    if mime not in _OUTPUT_MIME_TYPES:
        raise BadRequestBody(f"parameters.outputOptions.mimeType: unsupported {mime!r}")
    quality = pick(options, "compressionQuality", "compression_quality")
    return TryOnRequest(
        model=model,
        person=person,
        products=(product,),
        input_digest=hashlib.sha256(person_bytes + product_bytes).hexdigest(),
        prompt=str(pick(instance, "prompt", "prompt", "") or ""),
        sample_count=count,
        seed=int(seed) if seed is not None else None,
        safety_setting=_choice(
            pick(params, "safetySetting", "safety_setting"),
            _TRY_ON_SAFETY,
            "block_medium_and_above",
            "safetySetting",
        ),
        output_mime=str(mime),
        quality=int(quality) if quality is not None else None,
    )
