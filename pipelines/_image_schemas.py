"""The events of the image kinds: generation, editing and virtual try-on.

Why Structs of their own: each kind's request says what the proxy's image routes take (a
prompt, LoRAs, a size, `n`) and names its input images by reference (`MediaRef`), since Kafka
records are too small to carry photos; each result carries the stored outputs as
`OutputArtifact`s, never the pixels, plus the proxy's accounting (`Served`). Events tolerate
unknown fields like every other event (`schemas.events`).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from artifacts.links import OutputArtifact
from pipelines._proxy_http import Served
from pipelines._refs import MediaRef
from schemas import Failed, Request, Result

__all__ = [
    "DEFAULT_EDIT_TASK",
    "DEFAULT_GENERATION_TASK",
    "DEFAULT_TRY_ON_TASK",
    "ImageEditFailed",
    "ImageEditRequested",
    "ImageEditSucceeded",
    "ImageGenerationFailed",
    "ImageGenerationRequested",
    "ImageGenerationSucceeded",
    "Images",
    "LoraRef",
    "TryOnFailed",
    "TryOnRequested",
    "TryOnSucceeded",
]

DEFAULT_GENERATION_TASK = "image-generation"
DEFAULT_EDIT_TASK = "image-editing"
DEFAULT_TRY_ON_TASK = "virtual-try-on"

Task = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Prompt = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
# WIDTHxHEIGHT ("1024x1536") or one of Fal's presets ("portrait_4_3"); each provider of the
# task checks it and the proxy answers a 400 naming `size` when one cannot serve it.
Size = Annotated[str, msgspec.Meta(pattern=r"^(\d{2,5}x\d{2,5}|[a-z0-9_]{3,40})$")]
Count = Annotated[int, msgspec.Meta(ge=1, le=4)]


class LoraRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A LoRA to apply: exactly one of `path` (the weights' http(s) URL, as Fal names it) or
    `fine_tuning_job` (a gateway LoRA-training job id, whose `fine_tuned_model` is that URL),
    and its scale."""

    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    fine_tuning_job: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    scale: Annotated[float, msgspec.Meta(ge=0, le=4)] = 1.0

    def __post_init__(self) -> None:
        if (self.path is None) == (self.fine_tuning_job is None):
            raise ValueError("a LoRA needs exactly one of path, fine_tuning_job")


# ---------------------------------------------------------------- requests


class ImageGenerationRequested(
    Request, frozen=True, kw_only=True, tag="image.generation.requested"
):
    """Generate `n` images from a prompt, optionally with LoRAs (the task's Fal deployment
    applies them; a fallback without LoRA support serves the prompt alone)."""

    task: Task = DEFAULT_GENERATION_TASK
    prompt: Prompt
    loras: Annotated[list[LoraRef], msgspec.Meta(max_length=5)] = msgspec.field(
        default_factory=list
    )
    size: Size | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] | None = None
    n: Count = 1


class ImageEditRequested(Request, frozen=True, kw_only=True, tag="image.edit.requested"):
    """Edit one image as the prompt says; with a mask (white = change, the image's size) only
    the masked part changes."""

    task: Task = DEFAULT_EDIT_TASK
    image: MediaRef
    mask: MediaRef | None = None
    prompt: Prompt
    size: Size | None = None
    n: Count = 1


class TryOnRequested(Request, frozen=True, kw_only=True, tag="tryon.requested"):
    """Dress the person in the garments (in the order given); `instruction` says how."""

    task: Task = DEFAULT_TRY_ON_TASK
    person: MediaRef
    garments: Annotated[list[MediaRef], msgspec.Meta(min_length=1, max_length=13)]
    instruction: Prompt | None = None


# ---------------------------------------------------------------- payloads and results


class Images(msgspec.Struct, frozen=True, kw_only=True):
    """What an image handler returns; it becomes the kind's succeeded result."""

    images: list[OutputArtifact]
    # WIDTHxHEIGHT of each image as decoded, in order (a fallback may serve another size).
    sizes: list[str]
    seed: int | None = None
    revised_prompt: str | None = None
    served: Served


class _Imaged(Result, frozen=True, kw_only=True):
    """The fields of every image result: the stored outputs and the accounting."""

    images: Annotated[list[OutputArtifact], msgspec.Meta(min_length=1)]
    sizes: list[str]
    seed: int | None = None
    revised_prompt: str | None = None
    served: Served
    # The consumer's whole handling of the request, retries included.
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class ImageGenerationSucceeded(
    _Imaged, frozen=True, kw_only=True, tag="image.generation.succeeded"
):
    pass


class ImageGenerationFailed(Failed, frozen=True, kw_only=True, tag="image.generation.failed"):
    pass


class ImageEditSucceeded(_Imaged, frozen=True, kw_only=True, tag="image.edit.succeeded"):
    pass


class ImageEditFailed(Failed, frozen=True, kw_only=True, tag="image.edit.failed"):
    pass


class TryOnSucceeded(_Imaged, frozen=True, kw_only=True, tag="tryon.succeeded"):
    pass


class TryOnFailed(Failed, frozen=True, kw_only=True, tag="tryon.failed"):
    pass
