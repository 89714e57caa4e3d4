"""The structured answers of the four structured-text tasks, and the events around them.

Why Structs first: the JSON Schema sent to the model (`response_format`) and the strict decoder
that checks its answer are both derived from the same Struct, so they cannot drift. Answers
forbid unknown fields and require every field, which is also what providers' strict
structured-output modes demand. Events (requests, results) tolerate unknown fields like every
other event (`schemas.events`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from pipelines._refs import MediaRef
from schemas import Failed, GatewayLatency, Request, Result, Usage

__all__ = [
    "AnalysisFailed",
    "AnalysisRequested",
    "AnalysisSucceeded",
    "Caption",
    "CaptionFailed",
    "CaptionRequested",
    "CaptionSucceeded",
    "Category",
    "Fit",
    "ImageFinding",
    "ImageInput",
    "Outfit",
    "OutfitItem",
    "Pattern",
    "ProductCaption",
    "Role",
    "Styling",
    "StylingFailed",
    "StylingRequested",
    "StylingSucceeded",
    "StylingSuggestions",
    "Visibility",
    "VisibilityDecision",
    "VisibilityFailed",
    "VisibilityRequested",
    "VisibilitySucceeded",
    "VisionAnalysis",
    "VisionFindings",
    "answer_schema",
]

# An image travels by reference: an http(s) URL the provider fetches or a data: URL (small
# inline images), or a `MediaRef` object (an artifact id, a path under the handler's allowed
# roots, a URL for the guarded fetcher) that the handler resolves into a data: URL.
ImageRef = Annotated[str, msgspec.Meta(pattern=r"^(https?://|data:image/)", max_length=4_000_000)]
ImageInput = ImageRef | MediaRef
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]

Category = Literal[
    "tops", "bottoms", "dresses", "outerwear", "knitwear", "footwear", "bags",
    "accessories", "jewellery", "swimwear", "lingerie", "activewear", "other",
]  # fmt: skip
Pattern = Literal["solid", "striped", "checked", "floral", "graphic", "animal", "abstract", "other"]
Fit = Literal["slim", "regular", "relaxed", "oversized", "not_applicable"]
Role = Literal["top", "bottom", "dress", "outerwear", "footwear", "bag", "accessory", "jewellery"]


class _Answer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of a model's structured answer: no extra fields, every field required."""


# ---------------------------------------------------------------- answers


class ProductCaption(_Answer, frozen=True, kw_only=True):
    """A product description for training data, from the product's images."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    category: Category
    colors: Annotated[list[Tag], msgspec.Meta(min_length=1)]
    materials: list[Tag]
    pattern: Pattern
    fit: Fit
    style_tags: list[Tag]
    description: Text


class OutfitItem(_Answer, frozen=True, kw_only=True):
    """One piece of a suggested outfit and the part it plays."""

    role: Role
    description: Text
    color: Tag


class Outfit(_Answer, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    items: Annotated[list[OutfitItem], msgspec.Meta(min_length=1)]
    rationale: Text


class StylingSuggestions(_Answer, frozen=True, kw_only=True):
    """Outfits built around the requested item or look."""

    outfits: Annotated[list[Outfit], msgspec.Meta(min_length=1)]


class ImageFinding(_Answer, frozen=True, kw_only=True):
    """What one image shows; `image` is its 0-based position in the request."""

    image: Annotated[int, msgspec.Meta(ge=0)]
    summary: Text
    attributes: list[Tag]


class VisionFindings(_Answer, frozen=True, kw_only=True):
    """Findings per image, their comparison, and the answer to the question."""

    findings: Annotated[list[ImageFinding], msgspec.Meta(min_length=1)]
    comparison: Text
    answer: Text


class VisibilityDecision(_Answer, frozen=True, kw_only=True):
    """Whether the image stays in the catalogue, and why."""

    keep: bool
    reason: Text


def answer_schema(answer: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON Schema of `answer`, with the root inlined (providers want an object at the
    top, not a `$ref`) and nested Structs under `$defs`."""
    (root,), components = msgspec.json.schema_components([answer], ref_template="#/$defs/{name}")
    name = str(root["$ref"]).rsplit("/", 1)[-1]
    schema = dict(components.pop(name))
    if components:
        schema["$defs"] = dict(sorted(components.items()))
    return schema


# ---------------------------------------------------------------- requests


class CaptionRequested(Request, frozen=True, kw_only=True, tag="caption.requested"):
    """Describe a product from its images; `context` is what is already known of it."""

    images: Annotated[list[ImageInput], msgspec.Meta(min_length=1, max_length=20)]
    context: Annotated[str, msgspec.Meta(max_length=4000)] | None = None


class StylingRequested(Request, frozen=True, kw_only=True, tag="styling.requested"):
    """Suggest outfits around an item or look (text and/or images)."""

    item: Text
    images: Annotated[list[ImageInput], msgspec.Meta(max_length=10)] = msgspec.field(
        default_factory=list
    )
    occasion: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    constraints: list[Annotated[str, msgspec.Meta(max_length=400)]] = msgspec.field(
        default_factory=list
    )
    outfits: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3


class AnalysisRequested(Request, frozen=True, kw_only=True, tag="vision.analysis.requested"):
    """Answer a question about several images, comparing them."""

    images: Annotated[list[ImageInput], msgspec.Meta(min_length=1, max_length=20)]
    question: Text


class VisibilityRequested(Request, frozen=True, kw_only=True, tag="visibility.requested"):
    """Decide whether one image meets the criteria (keep) or not (drop)."""

    image: ImageInput
    criteria: Annotated[list[Text], msgspec.Meta(min_length=1)]


# ---------------------------------------------------------------- payloads and results


class _Answered(msgspec.Struct, frozen=True, kw_only=True):
    """The accounting every structured handler's answer carries beside its structured part."""

    provider: str
    model: str
    # Model answers it took: 2 when the first did not validate.
    answers: int = 1
    images: int = 0
    usage: Usage | None = None
    cost_usd: float | None = None
    proxy_latency_ms: GatewayLatency | None = None
    fallback: bool = False
    provider_attempts: int = 1


class Caption(_Answered, frozen=True, kw_only=True):
    """A captioning handler's answer."""

    caption: ProductCaption


class Styling(_Answered, frozen=True, kw_only=True):
    styling: StylingSuggestions


class VisionAnalysis(_Answered, frozen=True, kw_only=True):
    analysis: VisionFindings


class Visibility(_Answered, frozen=True, kw_only=True):
    visibility: VisibilityDecision


class _Accounted(Result, frozen=True, kw_only=True):
    """The accounting fields of every structured result."""

    provider: str
    model: str
    answers: Annotated[int, msgspec.Meta(ge=1)] = 1
    images: Annotated[int, msgspec.Meta(ge=0)] = 0
    usage: Usage | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    cost_usd: Annotated[float, msgspec.Meta(ge=0)] | None = None
    proxy_latency_ms: GatewayLatency | None = None
    # A fallback deployment answered; provider calls the proxy made, retries included (over
    # both answers when the first did not validate).
    fallback: bool = False
    provider_attempts: Annotated[int, msgspec.Meta(ge=1)] = 1


class CaptionSucceeded(_Accounted, frozen=True, kw_only=True, tag="caption.succeeded"):
    caption: ProductCaption


class CaptionFailed(Failed, frozen=True, kw_only=True, tag="caption.failed"):
    pass


class StylingSucceeded(_Accounted, frozen=True, kw_only=True, tag="styling.succeeded"):
    styling: StylingSuggestions


class StylingFailed(Failed, frozen=True, kw_only=True, tag="styling.failed"):
    pass


class AnalysisSucceeded(_Accounted, frozen=True, kw_only=True, tag="vision.analysis.succeeded"):
    analysis: VisionFindings


class AnalysisFailed(Failed, frozen=True, kw_only=True, tag="vision.analysis.failed"):
    pass


class VisibilitySucceeded(_Accounted, frozen=True, kw_only=True, tag="visibility.succeeded"):
    visibility: VisibilityDecision


class VisibilityFailed(Failed, frozen=True, kw_only=True, tag="visibility.failed"):
    pass
