"""Fidelity checks against outputs recorded once with the source framework (`reference/*.npz`).

Why it exists: the original frameworks (torch) are never installed by the project, so a spec's
check runs the converted ONNX model on the inputs stored beside the recorded outputs and
measures the largest absolute difference; how each file was made is in reference/README.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from plugins.onnx.export.errors import ConversionError

__all__ = ["REFERENCE_DIR", "load_reference", "onnx_difference"]

REFERENCE_DIR = Path(__file__).with_name("reference")


def load_reference(path: Path) -> dict[str, np.ndarray]:
    """Every array of the recorded .npz at `path`; ConversionError if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as recorded:
            return {key: np.asarray(recorded[key]) for key in recorded.files}
    except (OSError, ValueError) as exc:
        raise ConversionError(f"recorded reference {path} cannot be read: {exc}") from exc


def onnx_difference(
    model: Path, feeds: Mapping[str, np.ndarray], expected: Sequence[np.ndarray]
) -> float:
    """The largest absolute difference between the model's outputs on `feeds` (all of them,
    in the model's order) and `expected`; ConversionError when the shapes differ."""
    import onnxruntime  # type: ignore[import-untyped]  # noqa: PLC0415 - no type information

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    actual = session.run(None, dict(feeds))
    if len(actual) != len(expected):
        raise ConversionError(f"{model}: {len(actual)} outputs, {len(expected)} recorded")
    worst = 0.0
    for output, want in zip(actual, expected, strict=True):
        got = np.asarray(output)
        if got.shape != want.shape:
            raise ConversionError(f"{model}: output shape {got.shape} != recorded {want.shape}")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))))
    return worst
