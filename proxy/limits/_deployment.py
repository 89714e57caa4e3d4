"""What one deployment can take: LiteLLM's model info, the provider's documented limits, and
the entry's `model_info:` overrides, merged once at start-up.

Where each default comes from:
- context window, output cap, vision: LiteLLM's cost map (`litellm.get_model_info`); a model
  it does not map has none, unless its `model_info:` gives them.
- parameters: `litellm.get_supported_openai_params` for the model; what is missing there is
  dropped by LiteLLM (`drop_params`) without a word, so the gateway refuses it instead.
- images: Anthropic at most 20 per request (the product's policy in the seeds; the API's own
  limit is 100), 5 MB and 8000 px a side per image (Anthropic's docs); OpenAI 500 per request,
  20 MB per image (OpenAI's vision docs); Gemini 3,000 per prompt and 7 MB per inline image
  (Google's docs). The seeds' smaller frame counts for video (OpenAI 10, Gemini 16) are the
  video-summarization task's policy and are set on its entries in litellm_config.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import litellm
import msgspec

from core.config import ConfigError
from proxy.routing import Deployment

__all__ = ["DeploymentLimits", "limits_of"]

_MB = 1024 * 1024
# Formats as Pillow names them.
_ANTHROPIC_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
_GEMINI_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIC", "HEIF"})
# Parameters every deployment takes: LiteLLM serves stream_options itself for every provider,
# and `user` (an end user's id for abuse monitoring) does not change the answer.
_UNIVERSAL = frozenset({"messages", "stream", "stream_options", "user"})
# Separate calls the gateway makes at most to serve `n` on a provider without it: each is a
# full, billed request, and n of them at once meet the provider's rate limit together.
_DEFAULT_MAX_FANOUT = 8


class _ProviderDefaults(msgspec.Struct, frozen=True, kw_only=True):
    max_images_per_request: int | None = None
    max_image_bytes: int | None = None
    max_image_side: int | None = None
    image_formats: frozenset[str] | None = None
    # An upper bound of what one image costs in input tokens (the context-window estimate).
    tokens_per_image: int = 1600


_DEFAULTS: Mapping[str, _ProviderDefaults] = {
    "anthropic": _ProviderDefaults(
        max_images_per_request=20,
        max_image_bytes=5 * _MB,
        max_image_side=8000,
        image_formats=_ANTHROPIC_FORMATS,
        tokens_per_image=1600,
    ),
    "openai": _ProviderDefaults(
        max_images_per_request=500,
        max_image_bytes=20 * _MB,
        image_formats=frozenset({"JPEG", "PNG", "GIF", "WEBP"}),
        tokens_per_image=1105,
    ),
    "gemini": _ProviderDefaults(
        max_images_per_request=3000,
        max_image_bytes=7 * _MB,
        image_formats=_GEMINI_FORMATS,
        tokens_per_image=258,
    ),
    "vertex_ai": _ProviderDefaults(
        max_images_per_request=3000,
        max_image_bytes=7 * _MB,
        image_formats=_GEMINI_FORMATS,
        tokens_per_image=258,
    ),
}


class DeploymentLimits(msgspec.Struct, frozen=True, kw_only=True):
    """One deployment's limits; None: not limited (or not known) by the gateway."""

    provider: str
    model: str
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    # False: the model takes no images at all.
    supports_vision: bool = True
    max_images_per_request: int | None = None
    max_image_bytes: int | None = None
    max_image_side: int | None = None
    max_image_pixels: int | None = None
    image_formats: frozenset[str] | None = None
    tokens_per_image: int = 1600
    # None: unknown (a custom provider), so no parameter is refused.
    supported_params: frozenset[str] | None = None
    # Whether the provider answers `n` itself; else up to `max_fanout` separate calls do.
    native_n: bool = True
    max_fanout: int = _DEFAULT_MAX_FANOUT

    @property
    def name(self) -> str:
        """The model without its provider prefix, as messages name it."""
        return self.model.split("/", 1)[-1]


class _Overrides(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's keys of an entry's `model_info:` (LiteLLM's own keys pass through)."""

    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    supports_vision: bool | None = None
    max_images_per_request: int | None = None
    max_image_bytes: int | None = None
    max_image_side: int | None = None
    max_image_pixels: int | None = None
    image_formats: list[str] | None = None
    tokens_per_image: int | None = None
    max_fanout: int | None = None


_OVERRIDE_KEYS = frozenset(_Overrides.__struct_fields__)


def _overrides(deployment: Deployment) -> _Overrides:
    ours = {k: v for k, v in deployment.model_info.items() if k in _OVERRIDE_KEYS}
    where = f"model_info of '{deployment.group}' ({deployment.model})"
    try:
        found = msgspec.convert(ours, _Overrides)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    for key in _OVERRIDE_KEYS - {"supports_vision", "image_formats"}:
        value = getattr(found, key)
        if value is not None and value < 1:
            raise ConfigError(f"{where}: {key} must be at least 1")
    return found


def _model_info(model: str) -> Mapping[str, Any]:
    if model.split("/", 1)[0] not in litellm.provider_list:
        return {}  # a custom provider (a plugin): LiteLLM's cost map has nothing for it
    try:
        info: Mapping[str, Any] = litellm.get_model_info(model)
    except Exception:  # LiteLLM raises a bare Exception for an unmapped model
        return {}
    return info


def _supported(deployment: Deployment) -> frozenset[str] | None:
    provider, _, name = deployment.model.partition("/")
    try:
        found = litellm.get_supported_openai_params(model=name, custom_llm_provider=provider)
    except Exception:  # unknown (custom) providers raise instead of answering
        return None
    return None if found is None else frozenset(found) | _UNIVERSAL


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def limits_of(deployment: Deployment) -> DeploymentLimits:
    """The deployment's limits: its `model_info:` first, then LiteLLM's, then the provider's."""
    info = _model_info(deployment.model)
    base = _DEFAULTS.get(deployment.provider, _ProviderDefaults())
    ours = _overrides(deployment)
    supported = _supported(deployment)
    formats = ours.image_formats
    return DeploymentLimits(
        provider=deployment.provider,
        model=deployment.model,
        max_input_tokens=_first(ours.max_input_tokens, info.get("max_input_tokens")),
        max_output_tokens=_first(ours.max_output_tokens, info.get("max_output_tokens")),
        supports_vision=_first(ours.supports_vision, info.get("supports_vision"), True),
        max_images_per_request=_first(ours.max_images_per_request, base.max_images_per_request),
        max_image_bytes=_first(ours.max_image_bytes, base.max_image_bytes),
        max_image_side=_first(ours.max_image_side, base.max_image_side),
        max_image_pixels=ours.max_image_pixels,
        image_formats=frozenset(f.upper() for f in formats) if formats else base.image_formats,
        tokens_per_image=_first(ours.tokens_per_image, base.tokens_per_image),
        supported_params=supported,
        native_n=supported is None or "n" in supported,
        max_fanout=_first(ours.max_fanout, _DEFAULT_MAX_FANOUT),
    )
