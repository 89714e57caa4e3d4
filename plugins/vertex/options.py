"""Per-model-group options of a Vertex deployment, read from litellm_config.yaml and validated
at start-up (pure, no I/O).

Why it exists: the safety settings a task sends (the seed's permissive settings for fashion
content) are configuration, never code, and a misspelt category or threshold must stop the
gateway at start-up, naming it, rather than reach Google on the first request. The names are
LiteLLM's (`safety_settings`, `vertex_project`, `vertex_location`) so stock LiteLLM reads the
same entries; the try-on model's own settings use the google-genai SDK's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from plugins.vertex.errors import VertexConfigError

__all__ = [
    "HARM_CATEGORIES",
    "HARM_METHODS",
    "HARM_THRESHOLDS",
    "ModelOptions",
    "SafetySetting",
    "is_try_on",
    "model_id",
    "parse_model_options",
]

# google-genai 3.x `HarmCategory`, `HarmBlockThreshold`, `HarmBlockMethod` (Vertex adds the
# image categories, JAILBREAK and `method`).
HARM_CATEGORIES = frozenset(
    {
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
        "HARM_CATEGORY_JAILBREAK",
        "HARM_CATEGORY_IMAGE_HATE",
        "HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT",
        "HARM_CATEGORY_IMAGE_HARASSMENT",
        "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT",
    }
)
HARM_THRESHOLDS = frozenset(
    {"BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"}
)
HARM_METHODS = frozenset({"SEVERITY", "PROBABILITY"})
# The try-on model's `safetySetting` and `personGeneration` (lower-case on the wire).
_FILTER_LEVELS = frozenset(
    {"block_low_and_above", "block_medium_and_above", "block_only_high", "block_none"}
)
_PERSON_GENERATION = frozenset({"dont_allow", "allow_adult", "allow_all"})
# The options of one model kind that the other does not take (named in the error).
_GEMINI_KEYS = frozenset({"safety_settings"})
_TRY_ON_KEYS = frozenset({"safety_filter_level", "person_generation", "add_watermark"})


class SafetySetting(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    threshold: str
    method: str | None = None

    def wire(self) -> dict[str, str]:
        body = {"category": self.category, "threshold": self.threshold}
        if self.method is not None:
            body["method"] = self.method
        return body


class ModelOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What one model group sends besides the request itself."""

    safety_settings: tuple[SafetySetting, ...] = ()
    project: str | None = None
    location: str | None = None
    # Try-on model only.
    safety_filter_level: str | None = None
    person_generation: str | None = None
    add_watermark: bool | None = None
    # A lower bound than the model's own on each input image, in MB (None: the model's).
    max_image_mb: float | None = None


def model_id(model: str) -> str:
    """``vertex/gemini-3-pro-image-preview`` (the config's name) -> the publisher model id."""
    return model.split("/", 1)[1] if "/" in model else model


def is_try_on(model: str) -> bool:
    """Whether ``model`` is the dedicated try-on model (served by `:predict`)."""
    return model_id(model).startswith("virtual-try-on")


def _bad(where: str, message: str) -> VertexConfigError:
    return VertexConfigError(f"{where}: {message}", param=where)


def _choice(where: str, value: Any, allowed: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        names = ", ".join(sorted(allowed))
        raise _bad(where, f"{value!r} is not one of {names}")
    return value


def _safety_settings(where: str, value: Any) -> tuple[SafetySetting, ...]:
    if not isinstance(value, list):
        raise _bad(where, "must be a list of {category, threshold[, method]}")
    settings = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise _bad(at, "must be a mapping {category, threshold[, method]}")
        unknown = set(item) - {"category", "threshold", "method"}
        if unknown:
            raise _bad(at, f"unknown field(s) {', '.join(sorted(unknown))}")
        category = _choice(f"{at}.category", item.get("category"), HARM_CATEGORIES)
        if category in seen:
            raise _bad(f"{at}.category", f"{category} is listed twice")
        seen.add(category)
        threshold = _choice(f"{at}.threshold", item.get("threshold"), HARM_THRESHOLDS)
        method = item.get("method")
        if method is not None:
            method = _choice(f"{at}.method", method, HARM_METHODS)
        settings.append(SafetySetting(category=category, threshold=threshold, method=method))
    return tuple(settings)


def _text(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(where, "must be a non-empty string")
    return value


def parse_model_options(group: str, model: str, params: Mapping[str, Any]) -> ModelOptions:
    """The options of model group ``group`` from its litellm_params; VertexConfigError names
    the first bad entry (`<group>.safety_settings[1].threshold: 'BLOCK_SOME' is not ...`)."""
    try_on = is_try_on(model)
    other = _GEMINI_KEYS if try_on else _TRY_ON_KEYS
    for name in params:
        if name in other:
            kind = "the try-on model" if not try_on else "Gemini models"
            raise _bad(f"{group}.{name}", f"applies to {kind} only, not to {model}")
    safety = params.get("safety_settings")
    level = params.get("safety_filter_level")
    person = params.get("person_generation")
    watermark = params.get("add_watermark")
    if watermark is not None and not isinstance(watermark, bool):
        raise _bad(f"{group}.add_watermark", "must be true or false")
    max_mb = params.get("max_image_mb")
    if max_mb is not None and (
        isinstance(max_mb, bool) or not isinstance(max_mb, int | float) or max_mb <= 0
    ):
        raise _bad(f"{group}.max_image_mb", "must be a positive number")
    return ModelOptions(
        safety_settings=_safety_settings(f"{group}.safety_settings", safety)
        if safety is not None
        else (),
        project=_text(f"{group}.vertex_project", params.get("vertex_project")),
        location=_text(f"{group}.vertex_location", params.get("vertex_location")),
        safety_filter_level=_choice(
            f"{group}.safety_filter_level",
            level.lower() if isinstance(level, str) else level,
            _FILTER_LEVELS,
        )
        if level is not None
        else None,
        person_generation=_choice(
            f"{group}.person_generation",
            person.lower() if isinstance(person, str) else person,
            _PERSON_GENERATION,
        )
        if person is not None
        else None,
        add_watermark=watermark,
        max_image_mb=float(max_mb) if max_mb is not None else None,
    )
