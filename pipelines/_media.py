"""What every media handler shares: its options, its proxy client, and its artifacts (inputs
resolved by reference, outputs stored and linked).

Why one place: image generation, edits, try-on, faces, masks, LoRA training and video all read
inputs the same way (`pipelines._refs`), put what the provider returned into the store of
`gateway_settings.artifacts`, and call the proxy through one `ProxyHttp`; a handler class only
adds its request-to-route mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from artifacts import DEFAULT_MAX_BYTES, GuardedFetcher
from artifacts.links import OutputArtifact, output_of
from artifacts.settings import ArtifactSettings, load_artifact_settings, open_store
from consumers.handler_config import HandlerResources
from pipelines._proxied import Proxied
from pipelines._proxy_http import ProxyHttp
from pipelines._refs import MediaResolver

__all__ = ["MediaArtifacts", "MediaHandler", "MediaOptions", "config_of"]


class MediaOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of a media handler entry in `gateway_settings.kafka.handlers`."""

    # The config whose `gateway_settings.artifacts` names the store (and whose model_list
    # routes the task, for handlers that need to know the serving provider). None: the file
    # the process started with, else litellm_config.yaml in the working directory.
    config: str | None = None
    # Directories input paths may name (none: path references are refused).
    allowed_roots: list[str] = msgspec.field(default_factory=list)
    # Hosts or networks the guarded fetcher may reach despite the private-address rules.
    fetch_allow: list[str] = msgspec.field(default_factory=list)
    fetch_max_bytes: Annotated[int, msgspec.Meta(gt=0)] | None = None
    # Overrides of gateway_settings.kafka.proxy.
    url: str | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    provider: str | None = None


def config_of(options: MediaOptions, resources: HandlerResources) -> Path:
    """The config file a handler reads: its own option, else the process's."""
    if options.config is not None:
        return Path(options.config)
    return resources.config_path or Path("litellm_config.yaml")


class MediaArtifacts:
    """The artifact store, the reference resolver and the link settings of one handler."""

    def __init__(
        self, settings: ArtifactSettings, options: MediaOptions, resources: HandlerResources
    ):
        self.settings = settings
        self.store = open_store(settings)
        self.resolver = MediaResolver(
            allowed_roots=options.allowed_roots,
            store=self.store,
            fetcher=GuardedFetcher(
                allow=[*options.fetch_allow, *resources.fetch_allow],
                max_bytes=options.fetch_max_bytes or DEFAULT_MAX_BYTES,
            ),
            redactor=resources.redactor,
        )

    @classmethod
    def from_options(cls, options: MediaOptions, resources: HandlerResources) -> MediaArtifacts:
        """Read at start-up, so a bad artifacts section stops the process then."""
        path = config_of(options, resources)
        return cls(load_artifact_settings(path, environ=resources.environ), options, resources)

    async def keep(self, data: bytes, content_type: str) -> OutputArtifact:
        """Store an output and describe it for a result (with a signed link when enabled)."""
        ref = await self.store.put(data, content_type)
        return output_of(self.settings, ref)


class MediaHandler(Proxied[ProxyHttp]):
    """Base of the media handlers: a proxy client and artifacts, one lifecycle."""

    def __init__(
        self,
        options: MediaOptions,
        resources: HandlerResources,
    ) -> None:
        self._options = options
        self._artifacts = MediaArtifacts.from_options(options, resources)
        self._proxy = ProxyHttp.from_resources(
            resources,
            url=options.url,
            timeout_s=options.timeout_s,
            provider=options.provider,
        )
