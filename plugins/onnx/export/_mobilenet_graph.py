"""MobileNetV2's feature extractor as an ONNX graph, from torchvision's state dict in numpy.

Why it exists: torch is not installed by the project, so the graph is written out layer by
layer: torchvision's `mobilenet_v2` (width 1.0, Sandler et al. 2018, table 2) with each
BatchNorm (eval mode, eps 1e-5) folded into the conv before it, ReLU6 as Clip(0, 6), depthwise
convs as grouped convs, and the residual Add where stride is 1 and the channels match. The
graph ends with the global average of the last 1280-channel map (the classifier's input).
Every tensor of the checkpoint except the classifier's must be used, as `strict=True` would
demand, so a checkpoint of another architecture is refused rather than half-read.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from plugins.onnx.export._graph import GraphBuilder, fold_batchnorm
from plugins.onnx.export.errors import ConversionError

__all__ = ["FEATURES", "INPUT", "OUTPUT", "SIZE", "mobilenet_v2"]

INPUT, OUTPUT = "pixel_values", "features"
SIZE, FEATURES = 224, 1280
# (expansion t, output channels c, repeats n, first stride s): the paper's table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


class _Weights:
    """The state dict, remembering which tensors the graph took."""

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.state = dict(state)
        self.used: set[str] = set()

    def conv_bn(self, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
        names = [f"{conv}.weight"] + [
            f"{bn}.{part}" for part in ("weight", "bias", "running_mean", "running_var")
        ]
        self.used.update(names)
        self.used.add(f"{bn}.num_batches_tracked")
        return fold_batchnorm(self.state[names[0]], None, self.state, bn)

    def unused(self) -> list[str]:
        return sorted(
            name
            for name in self.state
            if name not in self.used and not name.startswith("classifier.")
        )


def _conv_bn(
    b: GraphBuilder,
    x: str,
    weights: _Weights,
    conv: str,
    bn: str,
    *,
    stride: int = 1,
    groups: int = 1,
    relu6: bool = True,
) -> str:
    weight, bias = weights.conv_bn(conv, bn)
    y = b.conv(x, weight, bias, stride=stride, padding=(weight.shape[2] - 1) // 2, groups=groups)
    return b.op("Clip", y, b.const(0.0, "zero"), b.const(6.0, "six")) if relu6 else y


def _inverted_residual(
    b: GraphBuilder, x: str, weights: _Weights, prefix: str, *, cin: int, cout: int,
    stride: int, expansion: int,
) -> str:  # fmt: skip
    hidden, y, layer = cin * expansion, x, 0
    if expansion != 1:  # 1x1 expansion (torchvision: conv.0 = Conv2dNormActivation)
        y = _conv_bn(b, y, weights, f"{prefix}.conv.0.0", f"{prefix}.conv.0.1")
        layer = 1
    y = _conv_bn(
        b, y, weights, f"{prefix}.conv.{layer}.0", f"{prefix}.conv.{layer}.1",
        stride=stride, groups=hidden,
    )  # fmt: skip
    y = _conv_bn(
        b, y, weights, f"{prefix}.conv.{layer + 1}", f"{prefix}.conv.{layer + 2}", relu6=False
    )  # linear bottleneck: no activation after the projection
    return b.op("Add", x, y) if stride == 1 and cin == cout else y


def mobilenet_v2(state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """`pixel_values` float32 [batch, 3, 224, 224] -> `features` float32 [batch, 1280]."""
    weights = _Weights(state)
    b = GraphBuilder("mobilenetv2")
    x = b.input(INPUT, np.float32, ["batch", 3, SIZE, SIZE])
    x = _conv_bn(b, x, weights, "features.0.0", "features.0.1", stride=2)
    channels, index = 32, 1
    for expansion, cout, repeats, stride in _SETTINGS:
        for i in range(repeats):
            first = stride if i == 0 else 1
            x = _inverted_residual(
                b, x, weights, f"features.{index}",
                cin=channels, cout=cout, stride=first, expansion=expansion,
            )  # fmt: skip
            channels, index = cout, index + 1
    x = _conv_bn(b, x, weights, f"features.{index}.0", f"features.{index}.1")
    unused = weights.unused()
    if unused:
        raise ConversionError(f"MobileNetV2 checkpoint has tensors the graph lacks: {unused}")
    pooled = b.op("Flatten", b.op("GlobalAveragePool", x), axis=1)
    b.output(pooled, OUTPUT)
    return b.model([(OUTPUT, np.float32, ["batch", FEATURES])])
