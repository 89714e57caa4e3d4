"""MTCNN's three networks (Zhang et al. 2016) as ONNX graphs, from facenet-pytorch's state dicts.

Why it exists: torch is not installed by the project, so each network is written out layer by
layer with facenet-pytorch 2.6.0's parameter names: convs without padding, PReLU with one
slope per channel, max pools with torch's `ceil_mode=True` (a partial window at the bottom and
right edges still yields an output), and, before the dense layers of RNet and ONet, the
flatten in (width, height, channel) order, because the weights were converted from Caffe
(facenet-pytorch permutes to [batch, W, H, C] before flattening). Softmax runs over the two
class scores (channel axis of PNet's map). Every tensor of a checkpoint must be used, as
`strict=True` would demand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx

from plugins.onnx.export._graph import GraphBuilder
from plugins.onnx.export.errors import ConversionError

__all__ = ["INPUT", "NETWORKS", "OUTPUTS", "onet", "pnet", "rnet"]

INPUT = "image"
OUTPUTS = {
    "pnet": ("regression", "probability"),
    "rnet": ("regression", "probability"),
    "onet": ("regression", "landmarks", "probability"),
}


class _Net:
    """A builder plus the state dict, remembering which tensors the graph took."""

    def __init__(self, name: str, state: Mapping[str, np.ndarray]) -> None:
        self.name = name
        self.b = GraphBuilder(f"mtcnn-{name}")
        self.state = dict(state)
        self.used: set[str] = set()

    def take(self, name: str) -> np.ndarray:
        self.used.add(name)
        return self.state[name]

    def conv(self, x: str, layer: str) -> str:
        return self.b.conv(x, self.take(f"{layer}.weight"), self.take(f"{layer}.bias"))

    def dense(self, x: str, layer: str) -> str:
        return self.b.linear(x, self.take(f"{layer}.weight"), self.take(f"{layer}.bias"))

    def prelu(self, x: str, layer: str, *, spatial: bool) -> str:
        slope = self.take(f"{layer}.weight")
        # One slope per channel: [C, 1, 1] broadcasts over NCHW, [C] over [batch, C].
        shaped = slope.reshape(-1, 1, 1) if spatial else slope.reshape(-1)
        return self.b.op("PRelu", x, self.b.const(shaped, "slope"))

    def pool(self, x: str, kernel: int, stride: int) -> str:
        return self.b.op(
            "MaxPool", x, kernel_shape=[kernel, kernel], strides=[stride, stride], ceil_mode=1
        )

    def block(self, x: str, index: int, pool: tuple[int, int] | None = None) -> str:
        """conv{index} -> prelu{index} (-> max pool)."""
        y = self.prelu(self.conv(x, f"conv{index}"), f"prelu{index}", spatial=True)
        return y if pool is None else self.pool(y, *pool)

    def caffe_flatten(self, x: str) -> str:
        return self.b.op("Flatten", self.b.op("Transpose", x, perm=[0, 3, 2, 1]), axis=1)

    def softmax(self, x: str) -> str:
        return self.b.op("Softmax", x, axis=1)

    def finish(
        self, values: tuple[str, ...], shapes: tuple[list[int | str], ...]
    ) -> onnx.ModelProto:
        """Name the outputs as facenet-pytorch returns them; refuse unread tensors."""
        unused = sorted(set(self.state) - self.used)
        if unused:
            raise ConversionError(
                f"MTCNN {self.name} checkpoint has tensors the graph lacks: {unused}"
            )
        names = OUTPUTS[self.name]
        for value, name in zip(values, names, strict=True):
            self.b.output(value, name)
        return self.b.model(
            [(name, np.float32, shape) for name, shape in zip(names, shapes, strict=True)]
        )


def pnet(state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """`image` [batch, 3, height, width] -> regression [batch, 4, h, w], probability
    [batch, 2, h, w] (h, w: one cell per 12x12 window at stride 2)."""
    n = _Net("pnet", state)
    x = n.b.input(INPUT, np.float32, ["batch", 3, "height", "width"])
    x = n.block(n.block(n.block(x, 1, pool=(2, 2)), 2), 3)
    regression, probability = n.conv(x, "conv4_2"), n.softmax(n.conv(x, "conv4_1"))
    return n.finish(
        (regression, probability),
        (["batch", 4, "cells_y", "cells_x"], ["batch", 2, "cells_y", "cells_x"]),
    )


def rnet(state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """`image` [batch, 3, 24, 24] -> regression [batch, 4], probability [batch, 2]."""
    n = _Net("rnet", state)
    x = n.b.input(INPUT, np.float32, ["batch", 3, 24, 24])
    x = n.block(n.block(n.block(x, 1, pool=(3, 2)), 2, pool=(3, 2)), 3)
    x = n.prelu(n.dense(n.caffe_flatten(x), "dense4"), "prelu4", spatial=False)
    regression, probability = n.dense(x, "dense5_2"), n.softmax(n.dense(x, "dense5_1"))
    return n.finish((regression, probability), (["batch", 4], ["batch", 2]))


def onet(state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """`image` [batch, 3, 48, 48] -> regression [batch, 4], landmarks [batch, 10] (five x, then
    five y, relative to the box), probability [batch, 2]."""
    n = _Net("onet", state)
    x = n.b.input(INPUT, np.float32, ["batch", 3, 48, 48])
    x = n.block(n.block(n.block(x, 1, pool=(3, 2)), 2, pool=(3, 2)), 3, pool=(2, 2))
    x = n.prelu(n.dense(n.caffe_flatten(n.block(x, 4)), "dense5"), "prelu5", spatial=False)
    outputs = (n.dense(x, "dense6_2"), n.dense(x, "dense6_3"), n.softmax(n.dense(x, "dense6_1")))
    return n.finish(outputs, (["batch", 4], ["batch", 10], ["batch", 2]))


NETWORKS: dict[str, Callable[[Mapping[str, np.ndarray]], onnx.ModelProto]] = {
    "pnet": pnet,
    "rnet": rnet,
    "onet": onet,
}
