"""MTCNN (face boxes + 5 landmarks) from the facenet-pytorch wheel: three models.

Each network becomes its own model, so each gets its own manifest entry and batch axis:
`mtcnn-pnet` (fully convolutional: `image` float32 [batch, 3, height, width], both spatial
axes dynamic), `mtcnn-rnet` ([batch, 3, 24, 24]) and `mtcnn-onet` ([batch, 3, 48, 48]);
inputs are RGB scaled as (pixel - 127.5) / 128. The weights (`pnet.pt`, ...) are read without
torch by `_pth` and the graphs written by `_mtcnn_graph`. The cascade joining them (image
pyramid, NMS, box regression) is numpy in `plugins.onnx.mtcnn`. Each check compares with
outputs recorded once with facenet-pytorch's network definitions (reference/mtcnn.npz, made by
scripts/onnx_references/mtcnn.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from plugins.onnx.export.spec import ModelSpec, SourceFile

__all__ = ["NETS", "ONET", "PNET", "REFERENCE", "RNET", "scaled"]

REFERENCE = Path(__file__).with_name("reference") / "mtcnn.npz"
_PACKAGE, _VERSION = "facenet-pytorch", "2.6.0"
# net: (sha256 of its weights, output names)
NETS = {
    "pnet": ("a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
             ("regression", "probability")),
    "rnet": ("bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
             ("regression", "probability")),
    "onet": ("165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
             ("regression", "landmarks", "probability")),
}  # fmt: skip


def scaled(images: np.ndarray) -> np.ndarray:
    """uint8 NCHW -> the networks' input, (pixel - 127.5) / 128 as `plugins.onnx.mtcnn` feeds."""
    return ((images.astype(np.float32) - np.float32(127.5)) * np.float32(0.0078125)).astype(
        np.float32
    )


def _spec(net: str) -> ModelSpec:
    sha256, outputs = NETS[net]

    def convert(sources: Mapping[str, Path], out: Path) -> None:
        # onnx comes with the build extra: imported only when a model is built.
        import onnx  # noqa: PLC0415

        from plugins.onnx.export._mtcnn_graph import NETWORKS  # noqa: PLC0415
        from plugins.onnx.export._pth import load_state_dict  # noqa: PLC0415

        onnx.save(NETWORKS[net](load_state_dict(sources["weights"])), out / "model.onnx")

    def check(sources: Mapping[str, Path], out: Path) -> float:
        from plugins.onnx.export._recorded import load_reference, onnx_difference  # noqa: PLC0415

        recorded = load_reference(REFERENCE)
        feeds = {"image": scaled(recorded[f"{net}_images"])}
        expected = [recorded[f"{net}_{name}"] for name in outputs]
        return onnx_difference(out / "model.onnx", feeds, expected)

    return ModelSpec(
        name=f"mtcnn-{net}",
        task="face-detection",
        licence="MIT",
        sources=(
            SourceFile(
                key="weights", package=_PACKAGE, version=_VERSION,
                member=f"facenet_pytorch/data/{net}.pt", sha256=sha256,
            ),
        ),
        tolerance=1e-5,
        convert=convert,
        check=check,
        revision=2,  # graph written from numpy (no torch), checked against recorded outputs
        code_modules=(
            "plugins.onnx.export._mtcnn_graph", "plugins.onnx.export._graph",
            "plugins.onnx.export._pth", "plugins.onnx.export._recorded",
        ),
    )  # fmt: skip


PNET, RNET, ONET = _spec("pnet"), _spec("rnet"), _spec("onet")
