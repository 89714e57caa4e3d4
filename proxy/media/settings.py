"""`gateway_settings.media`: which plugin serves each media provider, and what it costs.

Why it exists: the gateway's media routes know no provider by name. A provider (the part of a
deployment's model before the first '/') is served by the plugin class named here, loaded at
start-up, so adding one is an edit of litellm_config.yaml alone; prices are configuration too,
since providers publish them and change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from core.config import ConfigError, load_section, read_config_file

__all__ = ["MediaSettings", "Price", "WebhookSettings", "load_media_settings"]


class Price(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """USD per billed megapixel (images, each rounded up to whole megapixels), per image, or
    per 1000 training steps (LoRA training)."""

    per_megapixel: float | None = None
    per_image: float | None = None
    per_1000_steps: float | None = None
    # Videos: USD per second of clip rendered.
    per_second: float | None = None

    def __post_init__(self) -> None:
        prices = (self.per_megapixel, self.per_image, self.per_1000_steps, self.per_second)
        if min(price or 0 for price in prices) < 0:
            raise ValueError("prices must not be negative")


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Providers' completion callbacks for training jobs, instead of polling them."""

    # Where providers should POST (this gateway's public URL + /gateway/webhooks/<provider>);
    # None: no callbacks, jobs are polled when read.
    callback_url: str | None = None
    # Public keys that may sign callbacks (Fal: the `x` values of its JWKS).
    keys: tuple[str, ...] = ()
    max_skew_s: float = 300.0


class MediaSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # provider -> "module:attribute" of a class built with no arguments.
    providers: Mapping[str, str] = msgspec.field(default_factory=dict)
    # deployment model (as in model_list) -> its price; models absent here are priced per
    # image from LiteLLM's cost map where it has them.
    prices: Mapping[str, Price] = msgspec.field(default_factory=dict)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)

    def __post_init__(self) -> None:
        for provider, factory in self.providers.items():
            if ":" not in factory:
                raise ValueError(f"providers.{provider} must be 'module:attribute'")


def load_media_settings(config_path: str | Path) -> MediaSettings:
    try:
        return load_section(read_config_file(config_path), "media", MediaSettings)
    except ValueError as exc:
        raise ConfigError(f"gateway_settings.media: {exc}") from exc
