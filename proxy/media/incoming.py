"""Reading an images request (a JSON generation, a multipart edit) into what the route needs.

Why it exists: both kinds are served by the same chain; they differ only in how the body is
read and which provider method validates it, so each kind is reduced here to its task name and
one validating call per provider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from proxy.asgi import Message, Receive, Scope
from proxy.errors import InvalidRequestError
from proxy.media.errors import MediaInvalidRequestError
from proxy.media.providers import ImageProvider

__all__ = ["Incoming", "read_edit", "read_form", "read_generation"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request's task (None: not one of ours) and how a provider validates it."""

    model: str | None
    parse: Callable[[ImageProvider], Any]
    # The provider method `parse` needs, so that a route is served only when all have it.
    needs: str
    # A JSON request's fields, for the OpenAI schema check (None: a form, checked by parsers).
    fields: dict[str, Any] | None = None
    # A form's field names (files included), for the same check of unknown fields.
    form_names: tuple[str, ...] | None = None


def read_generation(body: bytes) -> Incoming:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # No route can serve a body that is not JSON (LiteLLM's answers it with a 500).
        raise InvalidRequestError("request body is not valid JSON") from None
    model = data.get("model") if isinstance(data, dict) else None
    return Incoming(
        model=model if isinstance(model, str) else None,
        parse=lambda provider: provider.parse(data),
        needs="parse",
        fields=data if isinstance(data, dict) else None,
    )


async def _bytes_of(value: Any) -> bytes | None:
    if isinstance(value, UploadFile):
        return await value.read()
    return None


def _edit_parser(
    fields: dict[str, Any], images: list[bytes], mask: bytes | None
) -> Callable[[ImageProvider], Any]:
    """How one provider validates the edit: every image for a provider that takes several
    (`multi_image_edits`), else the one image (several are refused, naming the field)."""

    def parse(provider: ImageProvider) -> Any:
        editor: Any = provider
        if getattr(provider, "multi_image_edits", False) is True:
            return editor.parse_edit(fields, images, mask)
        if len(images) > 1:
            raise MediaInvalidRequestError(
                f"this task's provider edits one image; {len(images)} were sent", param="image"
            )
        return editor.parse_edit(fields, images[0] if images else None, mask)

    return parse


async def read_form(scope: Scope, receive: Receive) -> FormData:
    """The request's multipart form; one that does not parse (a part without headers, a
    broken boundary, a bad encoding) is the caller's 400, never a 500."""
    try:
        return await Request(scope, receive).form()
    except (MultiPartException, HTTPException, ValueError, KeyError) as exc:
        raise InvalidRequestError(f"the multipart form could not be read: {exc}") from exc


async def read_edit(scope: Scope, body: bytes) -> Incoming:
    """An images.edit form: fields as text (lists when repeated), the images (`image`, or
    `image[]` repeated, as the openai SDK sends a list) and the `mask` as bytes."""
    content_type = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"")
    if not content_type.startswith(b"multipart/form-data"):
        return Incoming(model=None, parse=lambda provider: None, needs="parse_edit")

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await read_form(scope, receive)
    fields: dict[str, Any] = {}
    for name in form:
        values = [v for v in form.getlist(name) if isinstance(v, str)]
        if values:
            fields[name] = values[0] if len(values) == 1 else values
    images = [
        data
        for value in (*form.getlist("image"), *form.getlist("image[]"))
        if (data := await _bytes_of(value)) is not None
    ]
    mask = await _bytes_of(form.get("mask"))
    model = fields.get("model")
    return Incoming(
        model=model if isinstance(model, str) else None,
        parse=_edit_parser(fields, images, mask),
        needs="parse_edit",
        form_names=tuple(form.keys()),
    )
