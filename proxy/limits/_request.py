"""What a request asks of a deployment, read once per request whatever the route's length.

Why it exists: a route's deployments are checked one after another against the same request,
and the costly part (decoding data-URL images) must happen once, not once per deployment. A
text-only request costs one pass over its messages.
"""

from __future__ import annotations

import binascii
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageRef", "RequestProfile", "RequestRefused"]

# Values equal to OpenAI's defaults: sent by many clients as a matter of course, they ask
# nothing of the provider, so a provider without the parameter can serve them.
_NEUTRAL: Mapping[str, Any] = {
    "n": 1,
    "logprobs": False,
    "top_logprobs": 0,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": {},
    "parallel_tool_calls": True,
    "modalities": ["text"],
}
_MISSING = object()


class RequestRefused(Exception):
    """The request is wrong whatever deployment serves it (an image that does not decode)."""

    retriable = False

    def __init__(self, param: str, rule: str) -> None:
        super().__init__(f"{param}: {rule}")
        self.param = param
        self.rule = rule


class ImageRef(msgspec.Struct, frozen=True, kw_only=True):
    """One image part: where it is in the request, and what its header says (data URLs)."""

    param: str
    # None for an http(s) URL: counted, never fetched.
    size_bytes: int | None = None
    format: str | None = None
    width: int = 0
    height: int = 0


def _decode(param: str, url: str) -> ImageRef:
    header, comma, data = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise RequestRefused(param, "a data URL image must be base64 (data:image/...;base64,)")
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error as exc:
        raise RequestRefused(param, "the image's base64 data does not decode") from exc
    try:
        # The header only: `verify` checks the file's structure without decoding its pixels.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                found = ImageRef(
                    param=param,
                    size_bytes=len(raw),
                    format=image.format,
                    width=image.width,
                    height=image.height,
                )
                image.verify()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise RequestRefused(param, "the image has too many pixels to be read safely") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RequestRefused(param, "the image data does not decode as an image") from exc
    return found


def _image(param: str, part: Mapping[str, Any]) -> ImageRef:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, Mapping) else value
    if isinstance(url, str) and url.startswith("data:"):
        return _decode(f"{param}.image_url", url)
    return ImageRef(param=f"{param}.image_url")


def _read(index: int, message: Any, images: list[ImageRef]) -> int:
    """The characters of one message's text; its image parts are added to `images`."""
    if not isinstance(message, Mapping):
        return 0
    chars = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                chars += len(part["text"])
            elif kind == "image_url":
                images.append(_image(f"messages[{index}].content[{j}]", part))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        if isinstance(arguments, str):
            chars += len(arguments)
    return chars


class RequestProfile:
    """The parts of one chat request that limits depend on.

    Per request, so it may hold the token counts made for it (one per model at most).
    """

    __slots__ = (
        "chars",
        "images",
        "max_tokens",
        "messages",
        "n",
        "stream",
        "token_counts",
        "tools",
        "used",
    )

    def __init__(self, params: Mapping[str, Any]) -> None:
        """Read `params` (well-formed OpenAI chat parameters); raise `RequestRefused` for an
        image no deployment could take."""
        messages = params.get("messages")
        self.messages: Sequence[Any] = messages if isinstance(messages, list) else ()
        self.tools: Any = params.get("tools")
        # Parameters set to something other than OpenAI's default.
        self.used = frozenset(
            k for k, v in params.items() if v is not None and _NEUTRAL.get(k, _MISSING) != v
        )
        n = params.get("n")
        self.n: int = n if isinstance(n, int) and not isinstance(n, bool) else 1
        self.stream = bool(params.get("stream"))
        self.max_tokens: tuple[str, int] | None = None
        for name in ("max_completion_tokens", "max_tokens"):
            value = params.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                self.max_tokens = (name, value)
                break
        self.token_counts: dict[str, int] = {}
        images: list[ImageRef] = []
        chars = sum(_read(i, message, images) for i, message in enumerate(self.messages))
        if self.tools:
            chars += len(msgspec.json.encode(self.tools))
        self.chars = chars
        self.images = tuple(images)

    def text_messages(self) -> list[Any]:
        """The messages with their image parts left out, for a token count: LiteLLM's counter
        would fetch http(s) images to size them; images are counted per deployment instead."""
        if not self.images:
            return list(self.messages)
        kept: list[Any] = []
        for message in self.messages:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, list):
                parts = [p for p in content if not (isinstance(p, Mapping) and "image_url" in p)]
                kept.append({**message, "content": parts})
            else:
                kept.append(message)
        return kept
