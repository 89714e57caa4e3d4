"""MediaPipe selfie segmentation (256x256 person mask) from mediapipe 0.10.21's wheel.

Why it exists: the self-hosted person-segmentation option. mediapipe 0.10.21 is the last
release shipping the .tflite file (Apache-2.0); the model ends in MediaPipe's custom op
`Convolution2DTransposeBias`, which `tflite_onnx` converts and LiteRT cannot run, so the check
compares with outputs recorded once with MediaPipe itself (reference/README.md). The ONNX graph
takes what `plugins.onnx.masks.preprocess` makes, float32 NHWC [batch, 256, 256, 3] in [0, 1],
and answers `mask` [batch, 256, 256, 1], the person probability of each pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from plugins.onnx.export.spec import ModelSpec, SourceFile
from plugins.onnx.export.tflite_check import recorded_difference

__all__ = ["INPUT", "OUTPUTS", "REFERENCE", "SPEC"]

INPUT = "image"
_CONVERTER = (
    "plugins.onnx.export.tflite_onnx",
    "plugins.onnx.export.tflite_reader",
    "plugins.onnx.export.tflite_check",
)
OUTPUTS = ("mask",)
REFERENCE = Path(__file__).with_name("reference") / "selfie_segmentation.npz"


def _convert(sources: Mapping[str, Path], out: Path) -> None:
    # onnx and tflite come with the build extra: imported only when a model is built.
    import onnx  # noqa: PLC0415

    from plugins.onnx.export.tflite_onnx import tflite_to_onnx  # noqa: PLC0415

    model = tflite_to_onnx(sources["model"].read_bytes(), input_name=INPUT, output_names=OUTPUTS)
    onnx.save(model, out / "model.onnx")


def _check(sources: Mapping[str, Path], out: Path) -> float:
    return recorded_difference(out / "model.onnx", REFERENCE)


SPEC = ModelSpec(
    name="selfie-segmentation",
    task="segmentation",
    licence="Apache-2.0",
    sources=(
        SourceFile(
            key="model",
            package="mediapipe",
            version="0.10.21",
            member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        ),
    ),
    # Probabilities in [0, 1]: measured 4.6e-5 against MediaPipe's own runtime.
    tolerance=5e-4,
    convert=_convert,
    check=_check,
    code_modules=_CONVERTER,
)
