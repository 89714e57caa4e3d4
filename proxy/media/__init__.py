"""The gateway's own media routes, served ahead of LiteLLM's: image generation for the image
tasks, through provider plugins named in `gateway_settings.media`, under the same auth and the
same retry/fallback policy as task chat completions.

Modules: `images` (the ASGI wrapper), `providers` (the plugin protocol and loading), `errors`
(plugin errors -> the proxy's tree), `settings` (`gateway_settings.media`), `incoming` (reading
a generation or an edit form), `pricing` (start-up configuration of plugins per model group and
per-image prices from LiteLLM's map), `jobs` and `training` (fine-tuning routes).
"""

from proxy.media.errors import MediaInvalidRequestError
from proxy.media.images import COST_HEADER, MediaApp
from proxy.media.pricing import check_media_config
from proxy.media.providers import ImageProvider, load_providers
from proxy.media.settings import MediaSettings, Price, load_media_settings

__all__ = [
    "COST_HEADER",
    "ImageProvider",
    "MediaApp",
    "MediaInvalidRequestError",
    "MediaSettings",
    "Price",
    "check_media_config",
    "load_media_settings",
    "load_providers",
]
