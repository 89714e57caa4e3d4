"""What the media routes need from a provider plugin, and loading the plugins config names.

Why it exists: the proxy package imports no plugin (plugins stand alone); the plugin classes
named in `gateway_settings.media.providers` are imported by path at start-up and used through
this protocol only.

Contract of an `ImageProvider`:
- `parse(body)` (and, for edits, `parse_edit(fields, image, mask)`) validates an OpenAI images
  request and raises the plugin's own error (with
  `status_code` 400 and `param`) before anything is sent;
- `generate(job, request, ...)` is called once per attempt with the same `job`: a job that has
  been submitted is looked up again, never submitted twice;
- `cancel(job)` is best effort and never raises.

Optional, by attribute (a provider without them is served as before):
- `configure(group, model, params)`: called at start-up once per deployment of the provider
  with its litellm_params (safety settings, project); a plugin error raised here stops the
  start-up, naming the entry. A provider that has it gets `group=` in `generate` too.
- `check(request, *, group, model)`: called before any provider call for every deployment of
  the task, to refuse what that model cannot take (too many images, too large an image).
- `multi_image_edits = True`: `parse_edit` receives every image of the form (a list, in the
  order sent) instead of the first; otherwise an edit with several images is refused.
- `billed_images(request, model) -> int`: images charged, for prices per image.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from core.config import ConfigError

__all__ = ["ImageProvider", "load_providers"]


class ImageProvider(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def parse(self, body: Mapping[str, Any]) -> Any: ...

    # Optional: providers that edit images also have
    # `parse_edit(fields: Mapping[str, Any], image: bytes | None, mask: bytes | None) -> Any`
    # (with `multi_image_edits`, `image` is the list of every image sent).

    def billed_megapixels(self, request: Any) -> int: ...

    def new_job(self) -> Any: ...

    async def generate(
        self, job: Any, request: Any, *, model: str, api_base: str | None, key: str
    ) -> dict[str, Any]: ...

    async def cancel(self, job: Any) -> None: ...


def load_providers(factories: Mapping[str, str]) -> dict[str, ImageProvider]:
    """Build one instance per configured provider from its 'module:attribute' path."""
    built: dict[str, ImageProvider] = {}
    for provider, path in factories.items():
        module_name, _, attribute = path.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"gateway_settings.media.providers.{provider}: {exc}") from exc
        built[provider] = factory()
    return built
