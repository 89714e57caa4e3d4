"""`manifest.json`: what `gateway models build` produced, and the digest that keeps it cached.

Why it exists: serving reads each model's input and output names, shapes and dtypes from
here rather than guessing them, and an operator sees where every model came from (package,
version, member, sha256), its licence and how close it came to its source framework. A
model is rebuilt only when its `inputs_digest` (sources, revision, converter code) changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plugins.onnx.export.spec import ModelSpec

__all__ = ["MANIFEST_NAME", "Manifest", "ModelEntry", "SourceRecord", "TensorInfo", "inputs_digest"]

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorInfo:
    """One input or output of a model; a dynamic axis is a name such as "batch"."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str  # numpy's name: "float32", "uint8", "int64"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRecord:
    """One checked source file, as the manifest records it."""

    package: str
    version: str
    member: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelEntry:
    """One built model."""

    name: str
    task: str
    licence: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    sha256: str  # of model.onnx
    sources: tuple[SourceRecord, ...]
    tolerance: float
    max_error: float  # what the fidelity check measured
    revision: int
    inputs_digest: str

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        del raw["name"]  # the key of the entry
        return raw

    @classmethod
    def from_json(cls, name: str, raw: dict[str, Any]) -> ModelEntry:
        def tensors(items: list[dict[str, Any]]) -> tuple[TensorInfo, ...]:
            return tuple(
                TensorInfo(name=t["name"], shape=tuple(t["shape"]), dtype=t["dtype"]) for t in items
            )

        return cls(
            name=name,
            task=raw["task"],
            licence=raw["licence"],
            inputs=tensors(raw["inputs"]),
            outputs=tensors(raw["outputs"]),
            sha256=raw["sha256"],
            sources=tuple(SourceRecord(**s) for s in raw["sources"]),
            tolerance=float(raw["tolerance"]),
            max_error=float(raw["max_error"]),
            revision=int(raw["revision"]),
            inputs_digest=raw["inputs_digest"],
        )


@dataclass(slots=True)
class Manifest:
    """All built models of one models directory, by name."""

    models: dict[str, ModelEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, models_dir: Path) -> Manifest:
        """The manifest of `models_dir`; empty when nothing was built there yet."""
        path = models_dir / MANIFEST_NAME
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text())["models"]
        except (ValueError, KeyError, TypeError):
            return cls()  # unreadable: every model counts as not built, and is rebuilt
        models: dict[str, ModelEntry] = {}
        for name, entry in raw.items():
            try:
                models[name] = ModelEntry.from_json(name, entry)
            except (KeyError, TypeError, ValueError):
                continue  # written by an older build: rebuilt like a missing one
        return cls(models)

    def save(self, models_dir: Path) -> None:
        """Write it atomically, so a reader never sees half a manifest."""
        models_dir.mkdir(parents=True, exist_ok=True)
        body = {"models": {name: self.models[name].to_json() for name in sorted(self.models)}}
        tmp = models_dir / f".{MANIFEST_NAME}.tmp"
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        os.replace(tmp, models_dir / MANIFEST_NAME)


def inputs_digest(spec: ModelSpec) -> str:
    """sha256 over what determines a build: the pinned sources, the revision and the source
    code of the converter, the check and the modules they name."""
    modules = {spec.convert.__module__, spec.check.__module__, *spec.code_modules}
    code = hashlib.sha256()
    for name in sorted(modules):
        # Read, not imported: a converter's helpers import torch, which takes seconds.
        found = importlib.util.find_spec(name)
        if found is None or found.origin is None:
            raise ValueError(f"model {spec.name!r} names module {name!r}, which does not exist")
        code.update(name.encode() + b"\0" + Path(found.origin).read_bytes())
    payload = {
        "name": spec.name,
        "revision": spec.revision,
        "task": spec.task,
        "licence": spec.licence,
        "tolerance": spec.tolerance,
        "sources": [[s.key, s.package, s.version, s.member, s.sha256] for s in spec.sources],
        "code": code.hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
