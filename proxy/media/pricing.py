"""Start-up work over the routing table for the media plugins: per-group configuration and
prices per image from LiteLLM's cost map.

Why it exists: a plugin's per-model-group options (e.g. Vertex safety settings) live in each
deployment's litellm_params and must be validated when the gateway starts, not on the first
request; and providers publish per-image prices that LiteLLM's map already carries, so the
config needs to price only what the map lacks (and may override it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from core.config import ConfigError
from proxy.accounting import litellm_image_price
from proxy.media.errors import is_plugin_error
from proxy.media.providers import ImageProvider, load_providers
from proxy.media.settings import MediaSettings, Price, load_media_settings
from proxy.routing import RoutingTable

__all__ = ["check_media_config", "configure_providers", "litellm_image_price", "with_mapped_prices"]

# LiteLLM-native deployments whose litellm_params a plugin also checks at start-up (a chat task
# on LiteLLM's own vertex_ai provider carries the same safety settings).
_CHECKED_BY = {"vertex_ai": "vertex"}


def _deployments(routing: RoutingTable) -> list[Any]:
    seen: dict[str, Any] = {}
    for task in routing.tasks():
        route = routing.get(task)
        for deployment in route.deployments if route is not None else ():
            seen.setdefault(deployment.group, deployment)
    return list(seen.values())


def configure_providers(providers: Mapping[str, ImageProvider], routing: RoutingTable) -> None:
    """Hand each deployment's litellm_params to its provider's `configure`, if it has one; a
    refusal is a ConfigError naming the group and the entry."""
    for deployment in _deployments(routing):
        name = _CHECKED_BY.get(deployment.provider, deployment.provider)
        provider: Any = providers.get(name)
        if provider is None or not hasattr(provider, "configure"):
            continue
        try:
            provider.configure(deployment.group, deployment.model, deployment.params)
        except Exception as exc:
            if not is_plugin_error(exc):
                raise
            message = getattr(exc, "message", None) or str(exc)
            raise ConfigError(f"model_list '{deployment.group}': {message}") from exc


def with_mapped_prices(
    settings: MediaSettings, routing: RoutingTable, providers: Mapping[str, ImageProvider]
) -> MediaSettings:
    """``settings`` with a per-image price from LiteLLM's map for every served model the
    config leaves unpriced."""
    prices: dict[str, Price] = dict(settings.prices)
    for deployment in _deployments(routing):
        if deployment.provider not in providers or deployment.model in prices:
            continue
        per_image = litellm_image_price(deployment.model)
        if per_image is not None:
            prices[deployment.model] = Price(per_image=per_image)
    return msgspec.structs.replace(settings, prices=prices)


def check_media_config(config_path: str, routing: RoutingTable) -> None:
    """What the media routes check at start-up (plugins load, each group's options are
    valid), for `gateway config check`; ConfigError names the first problem."""
    providers = load_providers(load_media_settings(config_path).providers)
    configure_providers(providers, routing)
