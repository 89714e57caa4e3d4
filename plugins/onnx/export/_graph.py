"""A small builder of ONNX graphs from numpy weights, shared by the converters.

Why it exists: the converters turn checkpoints (read into numpy by `_pth` or from
safetensors) into ONNX without torch; each model is then a plain function that names its
layers' weights and chains ops, and this builder owns the bookkeeping (unique value names,
initialisers, value infos, the model's opset).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["OPSET", "GraphBuilder", "fold_batchnorm"]

OPSET = 17

_ELEMENT = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.bool_): TensorProto.BOOL,
}


class GraphBuilder:
    """Accumulates nodes and initialisers; `model()` returns the checked ModelProto."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._nodes: list[onnx.NodeProto] = []
        self._initialisers: list[onnx.TensorProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def input(self, name: str, dtype: Any, shape: Sequence[int | str]) -> str:
        """Declare a graph input (str dims are symbolic, e.g. "batch")."""
        element = _ELEMENT[np.dtype(dtype)]
        self._inputs.append(helper.make_tensor_value_info(name, element, list(shape)))
        return name

    def const(self, array: np.ndarray | Sequence[int] | float, hint: str = "const") -> str:
        """An initialiser holding `array` (ints become int64, floats float32)."""
        value = np.asarray(array)
        if value.dtype.kind in "iu" and value.dtype != np.uint8:
            value = value.astype(np.int64)
        elif value.dtype.kind == "f":
            value = value.astype(np.float32)
        name = self._fresh(hint)
        self._initialisers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        """One node with one output; returns the output's name."""
        return self.ops(op_type, inputs, 1, **attributes)[0]

    def ops(
        self, op_type: str, inputs: Sequence[str], outputs: int, **attributes: Any
    ) -> list[str]:
        """One node with `outputs` outputs ("" inputs are omitted optional inputs)."""
        names = [self._fresh(op_type.lower()) for _ in range(outputs)]
        self._nodes.append(helper.make_node(op_type, list(inputs), names, **attributes))
        return names

    def output(self, value: str, name: str) -> str:
        """Expose `value` as graph output `name` (an Identity, so names stay stable)."""
        self._nodes.append(helper.make_node("Identity", [value], [name]))
        return name

    # ---------------------------------------------------------------- common layers

    def conv(
        self,
        x: str,
        weight: np.ndarray,
        bias: np.ndarray | None,
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        groups: int = 1,
        dilation: int | Sequence[int] = 1,
    ) -> str:
        """Conv of any rank with torch's symmetric padding convention."""
        spatial = weight.ndim - 2
        strides = _per_axis(stride, spatial)
        pads = _per_axis(padding, spatial)
        inputs = [x, self.const(weight, "w")]
        if bias is not None:
            inputs.append(self.const(bias, "b"))
        return self.op(
            "Conv",
            *inputs,
            strides=strides,
            pads=pads + pads,
            group=groups,
            dilations=_per_axis(dilation, spatial),
            kernel_shape=list(weight.shape[2:]),
        )

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None) -> str:
        """torch.nn.Linear: x @ weight.T + bias over the last axis."""
        y = self.op("MatMul", x, self.const(np.ascontiguousarray(weight.T), "w"))
        return y if bias is None else self.op("Add", y, self.const(bias, "b"))

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, *, eps: float = 1e-5) -> str:
        """torch.nn.LayerNorm over the last axis (opset 17's LayerNormalization)."""
        scale, shift = self.const(weight, "ln_w"), self.const(bias, "ln_b")
        return self.op("LayerNormalization", x, scale, shift, axis=-1, epsilon=float(eps))

    def model(self, outputs: Sequence[tuple[str, Any, Sequence[int | str]]]) -> onnx.ModelProto:
        """The finished model; `outputs` are (name, dtype, shape) of values passed to output()."""
        infos = [
            helper.make_tensor_value_info(name, _ELEMENT[np.dtype(dtype)], list(shape))
            for name, dtype, shape in outputs
        ]
        graph = helper.make_graph(
            self._nodes, self._name, self._inputs, infos, initializer=self._initialisers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="gateway models build",
        )
        model.ir_version = 8  # what onnxruntime 1.31 and every opset-17 runtime read
        onnx.checker.check_model(model)
        return model


def fold_batchnorm(
    weight: np.ndarray,
    bias: np.ndarray | None,
    state: dict[str, np.ndarray],
    prefix: str,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """A conv's weight and bias with the following BatchNorm (eval mode) folded in."""
    gamma, beta = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
    mean, var = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
    scale = (gamma / np.sqrt(var.astype(np.float64) + eps)).astype(np.float32)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    folded_bias = (bias if bias is not None else np.zeros_like(mean)) - mean
    return (weight * scale.reshape(shape)).astype(np.float32), (folded_bias * scale + beta).astype(
        np.float32
    )


def _per_axis(value: int | Sequence[int], axes: int) -> list[int]:
    return [int(value)] * axes if isinstance(value, int) else [int(v) for v in value]
