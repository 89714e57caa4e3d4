"""Validate Fal model inputs the way Fal does, into typed inputs for the emulated models.

Why it exists: Fal answers invalid inputs with a 422 whose ``detail`` is a list of pydantic-style
entries (``loc``, ``msg``, ``type``); clients (and the gateway's error mapping) rely on that
shape, so the checks live in pure functions returning either the typed input or those entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FLUX_MODELS",
    "IMAGE_SIZE_PRESETS",
    "TRAINING_MODELS",
    "FluxInput",
    "Lora",
    "TrainingInput",
    "ValidationFailed",
    "parse_flux_input",
    "parse_training_input",
]

# Preset name -> (width, height), as Fal documents them for Flux.
IMAGE_SIZE_PRESETS: Mapping[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
# The Flux endpoints the emulator serves, by "owner/app[/path]": (needs image_url, mask_url).
FLUX_MODELS: Mapping[str, tuple[bool, bool]] = {
    "fal-ai/flux-lora": (False, False),
    "fal-ai/flux/dev": (False, False),
    "fal-ai/flux/schnell": (False, False),
    "fal-ai/flux-lora/image-to-image": (True, False),
    "fal-ai/flux/dev/image-to-image": (True, False),
    "fal-ai/flux-lora/inpainting": (True, True),
}
_MAX_SIDE = 14142
_OUTPUT_FORMATS = ("jpeg", "png")


class ValidationFailed(Exception):
    """The input breaks the model's schema; ``detail`` is Fal's 422 body list."""

    retriable = False

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail))
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Lora:
    path: str
    scale: float


@dataclass(frozen=True, slots=True)
class FluxInput:
    prompt: str
    width: int
    height: int
    num_images: int
    seed: int | None
    loras: tuple[Lora, ...]
    steps: int
    guidance_scale: float
    output_format: str
    enable_safety_checker: bool
    sync_mode: bool
    # Image-to-image and inpainting only; image_size absent means the input image's size.
    image_url: str | None = None
    mask_url: str | None = None
    strength: float = 0.85
    size_given: bool = True


class _Checker:
    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.errors: list[dict[str, Any]] = []

    def fail(self, loc: tuple[str | int, ...], msg: str, kind: str, value: Any = None) -> None:
        entry: dict[str, Any] = {"loc": ["body", *loc], "msg": msg, "type": kind}
        if value is not None:
            entry["input"] = value
        self.errors.append(entry)

    def number(
        self, name: str, default: float, low: float, high: float, *, integer: bool = False
    ) -> float:
        value = self.body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail((name,), "Input should be a valid number", "float_parsing", value)
            return default
        if integer and not float(value).is_integer():
            self.fail((name,), "Input should be a valid integer", "int_parsing", value)
            return default
        if not low <= value <= high:
            self.fail(
                (name,),
                f"Input should be between {low:g} and {high:g}",
                "less_than_equal" if value > high else "greater_than_equal",
                value,
            )
            return default
        return value


def _image_size(check: _Checker) -> tuple[int, int]:
    value = check.body.get("image_size", "landscape_4_3")
    if isinstance(value, str):
        if value in IMAGE_SIZE_PRESETS:
            return IMAGE_SIZE_PRESETS[value]
        check.fail(
            ("image_size",),
            f"Input should be {', '.join(repr(p) for p in IMAGE_SIZE_PRESETS)}",
            "enum",
            value,
        )
        return IMAGE_SIZE_PRESETS["landscape_4_3"]
    if isinstance(value, Mapping):
        sides = []
        for side in ("width", "height"):
            raw = value.get(side, 512)
            if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= _MAX_SIDE:
                check.fail(("image_size", side), f"Input should be 1..{_MAX_SIDE}", "int", raw)
                raw = 512
            sides.append(raw)
        return sides[0], sides[1]
    check.fail(("image_size",), "Input should be a preset name or an object", "model_type")
    return IMAGE_SIZE_PRESETS["landscape_4_3"]


def _loras(check: _Checker) -> tuple[Lora, ...]:
    value = check.body.get("loras", [])
    if not isinstance(value, list):
        check.fail(("loras",), "Input should be a valid list", "list_type", value)
        return ()
    loras = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            check.fail(("loras", index), "Input should be a valid dictionary", "dict_type")
            continue
        path = item.get("path")
        if not isinstance(path, str) or not path:
            check.fail(("loras", index, "path"), "Field required", "missing")
            continue
        scale = item.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 <= scale <= 4:
            check.fail(("loras", index, "scale"), "Input should be between 0 and 4", "range", scale)
            continue
        loras.append(Lora(path=path, scale=float(scale)))
    return tuple(loras)


def _url(check: _Checker, name: str, needed: bool) -> str | None:
    value = check.body.get(name)
    if not needed:
        return None
    if not isinstance(value, str) or not value:
        check.fail((name,), "Field required", "missing")
        return None
    return value


def parse_flux_input(body: Any, endpoint: str = "fal-ai/flux-lora") -> FluxInput:
    """The typed input of a Flux call to ``endpoint``, or ValidationFailed with Fal's detail."""
    if not isinstance(body, Mapping):
        raise ValidationFailed([{"loc": ["body"], "msg": "Input should be an object", "type": "x"}])
    check = _Checker(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        check.fail(("prompt",), "Field required", "missing")
        prompt = ""
    width, height = _image_size(check)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        check.fail(("seed",), "Input should be a valid integer", "int_parsing", seed)
        seed = None
    output_format = body.get("output_format", "jpeg")
    if output_format not in _OUTPUT_FORMATS:
        check.fail(("output_format",), "Input should be 'jpeg' or 'png'", "enum", output_format)
        output_format = "jpeg"
    parsed = FluxInput(
        prompt=prompt,
        width=width,
        height=height,
        num_images=int(check.number("num_images", 1, 1, 4, integer=True)),
        seed=seed,
        loras=_loras(check),
        steps=int(check.number("num_inference_steps", 28, 1, 50, integer=True)),
        guidance_scale=float(check.number("guidance_scale", 3.5, 0, 35)),
        output_format=str(output_format),
        enable_safety_checker=bool(body.get("enable_safety_checker", True)),
        sync_mode=bool(body.get("sync_mode", False)),
        image_url=_url(check, "image_url", FLUX_MODELS[endpoint][0]),
        mask_url=_url(check, "mask_url", FLUX_MODELS[endpoint][1]),
        strength=float(check.number("strength", 0.85, 0.01, 1)),
        size_given="image_size" in body,
    )
    if check.errors:
        raise ValidationFailed(check.errors)
    return parsed


TRAINING_MODELS = frozenset({"fal-ai/flux-lora-fast-training"})


@dataclass(frozen=True, slots=True)
class TrainingInput:
    images_data_url: str
    trigger_word: str | None
    steps: int
    create_masks: bool
    is_style: bool


def parse_training_input(body: Any) -> TrainingInput:
    """The typed input of flux-lora-fast-training, or ValidationFailed with Fal's detail."""
    if not isinstance(body, Mapping):
        raise ValidationFailed([{"loc": ["body"], "msg": "Input should be an object", "type": "x"}])
    check = _Checker(body)
    url = body.get("images_data_url")
    if not isinstance(url, str) or not url:
        check.fail(("images_data_url",), "Field required", "missing")
        url = ""
    trigger = body.get("trigger_word")
    if trigger is not None and not isinstance(trigger, str):
        check.fail(("trigger_word",), "Input should be a valid string", "string_type", trigger)
        trigger = None
    steps = int(check.number("steps", 1000, 1, 10000, integer=True))
    if check.errors:
        raise ValidationFailed(check.errors)
    return TrainingInput(
        images_data_url=url,
        trigger_word=trigger,
        steps=steps,
        create_masks=bool(body.get("create_masks", True)),
        is_style=bool(body.get("is_style", False)),
    )
