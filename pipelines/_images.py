"""Image inputs of the chat-based kinds as the URLs a chat completion carries.

Why it exists: captioning, styling, vision analysis and visibility take images as URLs the
provider fetches, data: URLs, or references (`pipelines._refs.MediaRef`) that no provider can
read: an artifact id, a path under an allowed root, a URL that must pass the guarded fetcher.
`ImageUrls` resolves the references into data: URLs before the proxy is asked, so a reference
that cannot be resolved fails the request naming why, and the proxy's own image checks
(`proxy.limits`) see the real image.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from artifacts import DEFAULT_MAX_BYTES, GuardedFetcher
from artifacts.settings import load_artifact_settings
from consumers.handler_config import HandlerResources
from pipelines._media import MediaArtifacts, MediaOptions
from pipelines._refs import MediaRef, MediaResolver

__all__ = ["IMAGE_TYPES", "ImageUrls"]

# Image types providers take; the proxy's limits check each deployment's own list.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


class ImageUrls:
    """Resolves one handler's image inputs: its allowed roots, store and fetch rules."""

    def __init__(self, resolver: MediaResolver) -> None:
        self._resolver = resolver

    @classmethod
    def from_options(
        cls,
        resources: HandlerResources,
        *,
        config: str | None,
        allowed_roots: Sequence[str] = (),
        fetch_allow: Sequence[str] = (),
        fetch_max_bytes: int | None = None,
    ) -> ImageUrls:
        """Read at start-up, so a bad artifacts section stops the process then. The store is
        that of `config`, else of the config the process started with; with neither, no
        store is open and artifact references are refused."""
        path = config if config is not None else resources.config_path
        if path is not None:
            media = MediaOptions(
                config=str(path),
                allowed_roots=list(allowed_roots),
                fetch_allow=list(fetch_allow),
                fetch_max_bytes=fetch_max_bytes,
            )
            settings = load_artifact_settings(path, environ=resources.environ)
            return cls(MediaArtifacts(settings, media, resources).resolver)
        fetcher = GuardedFetcher(
            allow=list(fetch_allow), max_bytes=fetch_max_bytes or DEFAULT_MAX_BYTES
        )
        return cls(
            MediaResolver(allowed_roots=allowed_roots, fetcher=fetcher, redactor=resources.redactor)
        )

    async def urls(self, images: Sequence[str | MediaRef]) -> list[str]:
        """`images` in order as URLs: strings as they are, references as data: URLs.

        Raises InputRefused, InputNotFound or InputUnavailable (retriable) naming the image
        by its position ("image 1 ...").
        """
        urls: list[str] = []
        for number, image in enumerate(images):
            if isinstance(image, str):
                urls.append(image)
                continue
            media = await self._resolver.resolve(image, accept=IMAGE_TYPES, noun=f"image {number}")
            encoded = base64.b64encode(media.data).decode("ascii")
            urls.append(f"data:{media.content_type.split(';', 1)[0]};base64,{encoded}")
        return urls
