"""A chat's http(s) image URLs fetched once, guarded, and sent on as data URLs.

Why it exists: for the providers that take only inline images (Anthropic, Gemini) LiteLLM
downloads an http(s) image itself, with a plain client: any client of the gateway could make
it reach an address inside its network (a metadata service, an admin port), and each attempt
and fallback downloaded the image again. The fast path fetches each image once, before any
provider call, through the artifacts package's guarded fetcher (no private, loopback,
link-local or metadata address unless allow-listed in `gateway_settings.image_urls`; a size
and a time cap), and every provider, OpenAI included, gets the same bytes. Such a request is
then one the direct transport can carry, too.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import msgspec

from artifacts import FETCH_ERRORS, GuardedFetcher, unusable_url
from proxy.errors import InvalidRequestError

__all__ = ["ImageUrlSettings", "ImageUrls"]


class ImageUrlSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`gateway_settings.image_urls`: how the image URLs of chat requests are fetched."""

    # Hosts, addresses or CIDR networks an image URL may reach despite the private-address
    # rules (an image server inside the network).
    fetch_allow: tuple[str, ...] = ()
    # Per image: OpenAI's limit (the deployments' own, smaller ones are checked after).
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.timeout_s <= 0:
            raise ValueError("image_urls: max_bytes and timeout_s must be positive")


_REMOTE = ("http://", "https://")


class ImageUrls:
    """Replaces the http(s) image URLs of chat messages by data URLs of the fetched images."""

    def __init__(self, settings: ImageUrlSettings | None = None) -> None:
        settings = settings or ImageUrlSettings()
        self._fetcher = GuardedFetcher(
            settings.fetch_allow, max_bytes=settings.max_bytes, timeout_s=settings.timeout_s
        )

    async def inline(self, messages: Any) -> list[Any] | None:
        """A copy of `messages` with every http(s) image URL as a data URL; None when they name
        none (nothing to do). InvalidRequestError naming the part when one cannot be fetched:
        refused by the address rules, answered with an error or no image, too large, too slow."""
        places = list(_remote_images(messages))
        if not places:
            return None
        urls = list(dict.fromkeys(url for _, _, url in places))
        fetched = await asyncio.gather(
            *(self._data_url(url, places) for url in urls), return_exceptions=True
        )
        # The first part in message order that failed is named, whichever failed first.
        for outcome in fetched:
            if isinstance(outcome, BaseException):
                raise outcome
        inlined = {url: got for url, got in zip(urls, fetched, strict=True) if isinstance(got, str)}
        copy = [dict(message) for message in messages]
        for i, j, url in places:
            parts = copy[i]["content"] = list(copy[i]["content"])
            image = parts[j]["image_url"]
            kept = image if isinstance(image, dict) else {}  # `detail` and the like stay
            parts[j] = {**parts[j], "image_url": {**kept, "url": inlined[url]}}
        return copy

    async def _data_url(self, url: str, places: list[tuple[int, int, str]]) -> str:
        i, j = next((i, j) for i, j, at in places if at == url)
        param = f"messages[{i}].content[{j}].image_url.url"
        try:
            data, content_type = await self._fetcher.fetch(url, accept=("image/*",))
        except FETCH_ERRORS as exc:
            raise InvalidRequestError(unusable_url(exc, "image"), param=param) from exc
        media_type = content_type.split(";", 1)[0].strip().lower()
        return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _remote_images(messages: Any) -> list[tuple[int, int, str]]:
    """(message index, part index, URL) of every http(s) image part."""
    found: list[tuple[int, int, str]] = []
    if not isinstance(messages, list):
        return found
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url.startswith(_REMOTE):
                found.append((i, j, url))
    return found
