"""One compiled check per route the gateway serves itself.

Why it exists: the schemas are compiled once, at start-up, and shared by the chat fast path,
the embeddings route and the media routes; each route knows only which check it calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from proxy.contract.chat import check_chat_rules
from proxy.contract.validator import SchemaCheck

__all__ = ["IMAGE_EXTRAS", "RequestContract"]

# Fields the image plugins document beyond OpenAI's images.generate (sent as the SDK's
# `extra_body`; see the media tables of README.md): Fal's LoRAs, seed, steps, guidance and
# safety checker, Vertex's aspect ratio and image size.
IMAGE_EXTRAS = frozenset(
    {
        "loras",
        "seed",
        "num_inference_steps",
        "guidance_scale",
        "enable_safety_checker",
        "aspect_ratio",
        "image_size",
    }
)


# An edit form's own extra: Fal's image-to-image strength.
EDIT_EXTRAS = frozenset({"strength"})


class RequestContract:
    """The request checks of the gateway's routes; each raises `InvalidRequestError` (400)
    whose `param` names the field and whose message states the rule."""

    def __init__(self) -> None:
        self._chat = SchemaCheck("CreateChatCompletionRequest")
        self._embeddings = SchemaCheck("CreateEmbeddingRequest")
        self._images = SchemaCheck("CreateImageRequest", extras=IMAGE_EXTRAS)
        self._fine_tuning = SchemaCheck("CreateFineTuningJobRequest")
        self._edits = SchemaCheck("CreateImageEditRequest", extras=IMAGE_EXTRAS | EDIT_EXTRAS)

    def chat(self, request: Mapping[str, Any]) -> None:
        """POST /v1/chat/completions: the schema, then the conversation rules."""
        self._chat(request)
        check_chat_rules(request)

    def embeddings(self, request: Mapping[str, Any]) -> None:
        """POST /v1/embeddings."""
        self._embeddings(request)

    def image_generation(self, request: Mapping[str, Any]) -> None:
        """POST /v1/images/generations, the image plugins' extras included."""
        self._images(request)

    def image_edit_form(self, names: Iterable[str]) -> None:
        """POST /v1/images/edits: the form's field names (its values are text and files, which
        the image plugins check themselves). The openai SDK flattens lists and objects into
        bracketed names (`image[]`, `loras[][path]`): the name before the bracket counts."""
        self._edits.names(name.split("[", 1)[0] for name in names)

    def fine_tuning(self, request: Mapping[str, Any]) -> None:
        """POST /v1/fine_tuning/jobs."""
        self._fine_tuning(request)
