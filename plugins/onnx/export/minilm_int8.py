"""all-MiniLM-L6-v2 with int8 weights: the same graph as `minilm`, quantised during the build.

Why it exists: on CPUs the fp32 encoder is bound by its matrix products (about 600 short
sentences/s on 2 cores here); int8 weights with int8 products (onnxruntime's dynamic
quantisation, per output channel) nearly double that, at a small cost in fidelity. Vectors of
the two models are not interchangeable: an index is built and queried with one of them. The
check is the cosine between this model's embeddings and sentence-transformers' recorded ones
(reference/minilm.npz): the tolerance bounds 1 - cosine.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from plugins.onnx.export import minilm
from plugins.onnx.export.spec import ModelSpec

__all__ = ["SPEC"]


def _convert(sources: Mapping[str, Path], out: Path) -> None:
    from onnxruntime.quantization import (  # type: ignore[import-untyped]  # noqa: PLC0415
        QuantType,
        quantize_dynamic,
    )

    minilm.SPEC.convert(sources, out)  # the fp32 graph, tokenizer.json and serving.json
    root = logging.getLogger()
    level = root.level
    # The quantiser advises static pre-processing on the root logger; it does not apply to
    # dynamic quantisation of a text encoder and would read as a build problem.
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="minilm-int8-") as scratch:
            fp32 = Path(scratch) / "fp32.onnx"
            (out / "model.onnx").replace(fp32)
            quantize_dynamic(
                str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True
            )
    finally:
        root.setLevel(level)


def _check(sources: Mapping[str, Path], out: Path) -> float:
    import onnxruntime  # type: ignore[import-untyped]  # noqa: PLC0415 - no type information

    from plugins.onnx.export._recorded import load_reference  # noqa: PLC0415

    ref = load_reference(minilm.REFERENCE)
    feeds = {name: ref[f"st_{name}"] for name in ("input_ids", "attention_mask", "token_type_ids")}
    session = onnxruntime.InferenceSession(
        str(out / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (vectors,) = session.run(None, feeds)
    expected = ref["st_embeddings"]
    cosines = np.sum(vectors * expected, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(expected, axis=1)
    )
    return float(np.max(1.0 - cosines))


SPEC = ModelSpec(
    name="minilm-l6-v2-int8",
    task="embeddings",
    licence=minilm.SPEC.licence,
    sources=minilm.SPEC.sources,
    tolerance=0.03,  # 1 - cosine to sentence-transformers; measured 0.018 on the recorded texts
    convert=_convert,
    check=_check,
    code_modules=(*minilm.SPEC.code_modules, "plugins.onnx.export.minilm"),
)
