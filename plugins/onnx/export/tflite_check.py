"""Fidelity of a converted TFLite model: the same fixed inputs through LiteRT and onnxruntime.

Why it exists: the source framework of the MediaPipe models is the TFLite interpreter (LiteRT,
`ai-edge-litert`, a build-only dependency); a converted model is kept only if its outputs on
fixed inputs stay within the spec's tolerance of LiteRT's. The inputs are computed, not
random, so every machine checks the same numbers; ONNX runs them as one batch, so the check
also proves the dynamic batch axis. A model LiteRT cannot run (a MediaPipe custom op) is
checked against outputs recorded once with MediaPipe itself (`recorded_difference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plugins.onnx.export.errors import ConversionError

__all__ = [
    "fixed_images",
    "litert_outputs",
    "max_difference",
    "onnx_outputs",
    "recorded_difference",
]


def fixed_images(count: int, height: int, width: int) -> np.ndarray:
    """`count` deterministic uint8 RGB images [count, height, width, 3] with edges and blobs."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    images = []
    for k in range(count):
        waves = np.stack(
            [np.sin(xx * (0.05 + 0.02 * k) + yy * 0.031 * (c + 1) + k) for c in range(3)], -1
        )
        blob = ((xx - width * (0.3 + 0.15 * k)) ** 2 + (yy - height * 0.45) ** 2) < (
            (0.18 * min(height, width)) ** 2
        )
        image = 127.5 + 80.0 * waves + np.where(blob, 60.0, 0.0)[..., None]
        images.append(image.clip(0, 255).astype(np.uint8))
    return np.stack(images)


def litert_outputs(content: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    """The TFLite model's outputs on each input (its batch is 1), stacked along axis 0."""
    # LiteRT comes with the build extra only; it ships no type information.
    from ai_edge_litert.interpreter import (  # type: ignore[import-untyped]  # noqa: PLC0415
        Interpreter,
    )

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    targets = interpreter.get_output_details()
    per_input: list[list[np.ndarray]] = []
    for item in inputs:
        interpreter.set_tensor(source["index"], item[np.newaxis])
        interpreter.invoke()
        per_input.append([np.array(interpreter.get_tensor(t["index"])) for t in targets])
    return [np.concatenate(parts) for parts in zip(*per_input, strict=True)]


def onnx_outputs(model: Path, inputs: np.ndarray) -> list[np.ndarray]:
    """The ONNX model's outputs on all `inputs` at once (one batch)."""
    import onnxruntime  # type: ignore[import-untyped]  # noqa: PLC0415 - no types; build only

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: inputs})
    return [np.asarray(o) for o in outputs]


def max_difference(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray]) -> float:
    """The largest absolute difference between two lists of same-shaped outputs."""
    if len(expected) != len(actual):
        raise ConversionError(f"{len(actual)} outputs where the source has {len(expected)}")
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        if want.shape != got.shape:
            raise ConversionError(f"output shape {got.shape} where the source has {want.shape}")
        worst = max(worst, float(np.max(np.abs(want.astype(np.float64) - got))))
    return worst


def recorded_difference(model: Path, reference: Path) -> float:
    """Largest difference from outputs recorded with the source framework (`images` uint8
    NHWC, `outputs` float32) in the .npz `reference`; the model takes images scaled to [0, 1]."""
    try:
        with np.load(reference, allow_pickle=False) as recorded:
            images, expected = recorded["images"], recorded["outputs"]
    except (OSError, KeyError, ValueError) as exc:
        raise ConversionError(f"recorded reference {reference} cannot be read: {exc}") from exc
    inputs = images.astype(np.float32) / np.float32(255.0)
    return max_difference([expected], onnx_outputs(model, inputs)[:1])
