"""The events of the vision kinds: face boxes and segmentation masks of one input image.

Why its own module: the two kinds are served either through the proxy's chat tasks (Fal's
Moondream3 / SAM-3, answering the JSON of `plugins.fal.vision`) or by a self-hosted model in the
consumer's process, and both paths must fill exactly these Structs, so a consumer of the results
never learns which one answered except from `served`. Boxes are `[x, y, width, height]` in pixels
of the input as decoded; the mask itself never travels in a record, only its artifact.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from artifacts.links import OutputArtifact
from pipelines._proxy_http import Served
from pipelines._refs import MediaRef
from schemas import Failed, Request, Result

__all__ = [
    "FACES_TASK",
    "SEGMENTATION_TASK",
    "Face",
    "Faces",
    "FacesFailed",
    "FacesRequested",
    "FacesSucceeded",
    "Landmark",
    "Region",
    "Segmentation",
    "SegmentationFailed",
    "SegmentationRequested",
    "SegmentationSucceeded",
]

FACES_TASK = "face-detection"
SEGMENTATION_TASK = "segmentation"

Box = Annotated[
    list[Annotated[int, msgspec.Meta(ge=0)]],
    msgspec.Meta(
        min_length=4,
        max_length=4,
        description="[x, y, width, height] in pixels of the input image",
    ),
]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]
Side = Annotated[int, msgspec.Meta(ge=1)]
Task = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Landmark(msgspec.Struct, frozen=True, kw_only=True):
    """A named point of a face (an eye, the nose tip), in pixels of the input image."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
    x: float
    y: float


class Face(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One face; `score` is None when the model reports no confidence (Moondream3)."""

    box: Box
    score: Score | None = None
    # Only models that locate them (BlazeFace: eyes, nose, mouth, ear tragions).
    landmarks: list[Landmark] | None = None


class Region(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The bounding box of one segmented object, with the model's confidence when given."""

    box: Box
    score: Score | None = None


# ---------------------------------------------------------------- requests


class FacesRequested(Request, frozen=True, kw_only=True, tag="faces.detection.requested"):
    """Find the faces in one image; weaker ones than `min_score` and any past `max_faces`
    (best first) are left out."""

    task: Task = FACES_TASK
    image: MediaRef
    min_score: Score | None = None
    max_faces: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


class SegmentationRequested(Request, frozen=True, kw_only=True, tag="segmentation.requested"):
    """Segment what `prompt` names in one image: one mask of every match together."""

    task: Task = SEGMENTATION_TASK
    image: MediaRef
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] = "person"


# ---------------------------------------------------------------- payloads and results


class Faces(msgspec.Struct, frozen=True, kw_only=True):
    """A face handler's answer; it becomes a FacesSucceeded result."""

    faces: list[Face]
    width: int
    height: int
    served: Served


class Segmentation(msgspec.Struct, frozen=True, kw_only=True):
    """A segmentation handler's answer; it becomes a SegmentationSucceeded result."""

    mask: OutputArtifact
    width: int
    height: int
    foreground_fraction: float
    boxes: list[Region]
    served: Served


class FacesSucceeded(Result, frozen=True, kw_only=True, tag="faces.detection.succeeded"):
    faces: list[Face]
    # The input image's size, which the boxes are pixels of.
    width: Side
    height: Side
    served: Served
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class FacesFailed(Failed, frozen=True, kw_only=True, tag="faces.detection.failed"):
    pass


class SegmentationSucceeded(Result, frozen=True, kw_only=True, tag="segmentation.succeeded"):
    # A single-channel PNG of the input's size: 255 where the prompt's objects are, else 0.
    mask: OutputArtifact
    width: Side
    height: Side
    # The share of the mask's pixels that are foreground.
    foreground_fraction: Annotated[float, msgspec.Meta(ge=0, le=1)]
    boxes: list[Region] = msgspec.field(default_factory=list)
    served: Served
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class SegmentationFailed(Failed, frozen=True, kw_only=True, tag="segmentation.failed"):
    pass
