"""A TFLite graph rebuilt as an ONNX graph, with a dynamic batch axis and MediaPipe's custom op.

Why it exists: tflite2onnx (0.4.1) converts BlazeFace but fixes the batch at 1 (its RESHAPEs
keep the literal shape) and stops at MediaPipe's `Convolution2DTransposeBias`, which the selfie
segmenter ends with. The MediaPipe models use a dozen ops, so this converter maps them
directly: activations are NCHW inside the graph (what ONNX convolutions take), the graph input
stays NHWC like the TFLite model's, so the recorded TFLite outputs compare one to one, and every
RESHAPE keeps the batch dimension of its input (`0`), so the runner may stack images on axis 0.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from plugins.onnx.export.errors import ConversionError
from plugins.onnx.export.tflite_reader import TfliteGraph, TfliteOp, read_tflite

__all__ = ["OPSET", "tflite_to_onnx"]

OPSET = 17
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)
_NHWC_AXIS_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}
_UNARY = {"RELU": "Relu", "LOGISTIC": "Sigmoid", "TANH": "Tanh", "HARD_SWISH": "HardSwish"}
# TfLitePadding of a custom op's options: kTfLitePaddingSame = 1, kTfLitePaddingValid = 2.
_CUSTOM_PADDING = {1: "SAME", 2: "VALID"}


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one spatial axis (the extra pixel goes after)."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _Builder:
    def __init__(self, graph: TfliteGraph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: dict[int, str] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def rank(self, index: int) -> int:
        return len(self.graph.tensors[index].shape)

    def shape(self, index: int) -> tuple[int, ...]:
        return self.graph.tensors[index].shape

    def data(self, index: int) -> np.ndarray:
        data = self.graph.tensors[index].data
        if data is None:
            raise ConversionError(
                f"tflite tensor {self.graph.tensors[index].name!r} is not constant"
            )
        return data

    def operand(self, index: int, partner_rank: int) -> str:
        """An elementwise operand: activations by name, constants in the partner's layout."""
        tensor = self.graph.tensors[index]
        if tensor.data is None:
            return self.names[index]
        array = tensor.data.astype(np.float32) if tensor.data.dtype.kind == "f" else tensor.data
        if partner_rank == 4 and array.ndim == 4:
            array = array.transpose(_TO_NCHW)
        elif partner_rank == 4 and array.ndim == 1 and array.size > 1:
            array = array.reshape(-1, 1, 1)  # a per-channel vector broadcasts along C in NCHW
        return self.constant(np.ascontiguousarray(array), "const")

    def activation(self, value: str, fused: str) -> str:
        if fused == "NONE":
            return value
        if fused == "RELU":
            return self.node("Relu", [value], "relu")
        if fused in ("RELU6", "RELU_N1_TO_1"):
            low, high = (0.0, 6.0) if fused == "RELU6" else (-1.0, 1.0)
            bounds = [self.constant(np.array(b, np.float32), "clip") for b in (low, high)]
            return self.node("Clip", [value, *bounds], "clip")
        if fused == "TANH":
            return self.node("Tanh", [value], "tanh")
        raise ConversionError(f"fused activation {fused} is not supported")

    def pads(self, op: TfliteOp, kernel: tuple[int, int], dilation: tuple[int, int]) -> list[int]:
        if op.options["Padding"] == "VALID":
            return [0, 0, 0, 0]
        _, height, width, _ = self.shape(op.inputs[0])
        top, bottom = _same_pads(height, kernel[0], op.options["StrideH"], dilation[0])
        left, right = _same_pads(width, kernel[1], op.options["StrideW"], dilation[1])
        return [top, left, bottom, right]

    def convolution(self, op: TfliteOp, *, depthwise: bool) -> str:
        weights = self.data(op.inputs[1]).astype(np.float32)
        # TFLite: conv [O, kh, kw, I], depthwise [1, kh, kw, C*m]; ONNX: [O, I/group, kh, kw].
        onnx_weights = weights.transpose(3, 0, 1, 2) if depthwise else weights.transpose(_TO_NCHW)
        inputs = [self.names[op.inputs[0]], self.constant(np.ascontiguousarray(onnx_weights), "w")]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.constant(self.data(op.inputs[2]).astype(np.float32), "b"))
        kernel = (int(weights.shape[1]), int(weights.shape[2]))
        dilation = (op.options["DilationHFactor"], op.options["DilationWFactor"])
        out = self.node(
            "Conv",
            inputs,
            "conv",
            kernel_shape=list(kernel),
            strides=[op.options["StrideH"], op.options["StrideW"]],
            dilations=list(dilation),
            pads=self.pads(op, kernel, dilation),
            group=self.shape(op.inputs[0])[3] if depthwise else 1,
        )
        return self.activation(out, op.options["Fused"])

    def transpose_conv_bias(self, op: TfliteOp) -> str:
        """MediaPipe's Convolution2DTransposeBias: a transposed convolution plus a bias."""
        custom = op.options["custom"]
        if len(custom) < 12:
            raise ConversionError("Convolution2DTransposeBias lacks its padding and strides")
        padding, stride_w, stride_h = struct.unpack("<3i", custom[:12])
        if padding not in _CUSTOM_PADDING:
            raise ConversionError(f"Convolution2DTransposeBias padding {padding} is unknown")
        weights = self.data(op.inputs[1]).astype(np.float32)  # [O, kh, kw, I]
        _, in_h, in_w, _ = self.shape(op.inputs[0])
        _, out_h, out_w, _ = self.shape(op.outputs[0])
        kernel = (int(weights.shape[1]), int(weights.shape[2]))
        # The output's static shape fixes the cropping: the op makes (size - 1) * stride + k
        # pixels per axis and TensorFlow crops the excess, the smaller half before.
        begins: list[int] = []
        ends: list[int] = []
        for size, out, k, stride in (
            (in_h, out_h, kernel[0], stride_h),
            (in_w, out_w, kernel[1], stride_w),
        ):
            total = (size - 1) * stride + k - out
            if total < 0:
                raise ConversionError(f"Convolution2DTransposeBias cannot make {out} from {size}")
            begins.append(total // 2)
            ends.append(total - total // 2)
        return self.node(
            "ConvTranspose",
            [
                self.names[op.inputs[0]],
                self.constant(np.ascontiguousarray(weights.transpose(3, 0, 1, 2)), "w"),
                self.constant(self.data(op.inputs[2]).astype(np.float32), "b"),
            ],
            "deconv",
            kernel_shape=list(kernel),
            strides=[stride_h, stride_w],
            pads=[*begins, *ends],
        )

    def pool(self, op: TfliteOp) -> str:
        kernel = (op.options["FilterHeight"], op.options["FilterWidth"])
        out = self.node(
            "MaxPool" if op.kind == "MAX_POOL_2D" else "AveragePool",
            [self.names[op.inputs[0]]],
            "pool",
            kernel_shape=list(kernel),
            strides=[op.options["StrideH"], op.options["StrideW"]],
            pads=self.pads(op, kernel, (1, 1)),
        )
        return self.activation(out, op.options["Fused"])

    def pad(self, op: TfliteOp) -> str:
        paddings = self.data(op.inputs[1]).astype(np.int64)  # [rank, 2] in TFLite's axis order
        if paddings.shape[0] == 4:
            paddings = paddings[list(_TO_NCHW)]
        pads = np.concatenate([paddings[:, 0], paddings[:, 1]])
        return self.node("Pad", [self.names[op.inputs[0]], self.constant(pads, "pads")], "pad")

    def resize(self, op: TfliteOp) -> str:
        _, in_h, in_w, _ = self.shape(op.inputs[0])
        out_h, out_w = (int(v) for v in self.data(op.inputs[1]))
        scales = np.array([1.0, 1.0, out_h / in_h, out_w / in_w], np.float32)
        if op.options["AlignCorners"]:
            mode = "align_corners"
        elif op.options["HalfPixelCenters"]:
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        return self.node(
            "Resize",
            [self.names[op.inputs[0]], "", self.constant(scales, "scales")],
            "resize",
            mode="linear",
            coordinate_transformation_mode=mode,
        )

    def reshape(self, op: TfliteOp) -> str:
        value = self.names[op.inputs[0]]
        if self.rank(op.inputs[0]) == 4:  # TFLite reshapes in NHWC order
            value = self.node("Transpose", [value], "nhwc", perm=list(_TO_NHWC))
        target = list(self.shape(op.outputs[0]))
        target[0] = 0  # keep the input's batch, whatever it is
        out = self.node(
            "Reshape", [value, self.constant(np.array(target, np.int64), "shape")], "reshape"
        )
        if len(target) == 4:
            out = self.node("Transpose", [out], "nchw", perm=list(_TO_NCHW))
        return out

    def concatenation(self, op: TfliteOp) -> str:
        rank = self.rank(op.outputs[0])
        axis = op.options["Axis"] % rank
        if rank == 4:
            axis = _NHWC_AXIS_TO_NCHW[axis]
        inputs = [self.operand(i, rank) for i in op.inputs]
        return self.activation(
            self.node("Concat", inputs, "concat", axis=axis), op.options["Fused"]
        )

    def binary(self, op: TfliteOp) -> str:
        rank = self.rank(op.outputs[0])
        inputs = [self.operand(i, rank) for i in op.inputs]
        out = self.node("Add" if op.kind == "ADD" else "Mul", inputs, op.kind.lower())
        return self.activation(out, op.options["Fused"])

    def unary(self, op: TfliteOp) -> str:
        if op.kind == "RELU6":
            return self.activation(self.names[op.inputs[0]], "RELU6")
        return self.node(_UNARY[op.kind], [self.names[op.inputs[0]]], op.kind.lower())

    def convert(self, op: TfliteOp) -> str:
        handlers: dict[str, Callable[[TfliteOp], str]] = {
            "CONV_2D": lambda o: self.convolution(o, depthwise=False),
            "DEPTHWISE_CONV_2D": lambda o: self.convolution(o, depthwise=True),
            "CUSTOM:Convolution2DTransposeBias": self.transpose_conv_bias,
            "MAX_POOL_2D": self.pool,
            "AVERAGE_POOL_2D": self.pool,
            "ADD": self.binary,
            "MUL": self.binary,
            "PAD": self.pad,
            "RESIZE_BILINEAR": self.resize,
            "RESHAPE": self.reshape,
            "CONCATENATION": self.concatenation,
            "RELU6": self.unary,
            **dict.fromkeys(_UNARY, self.unary),
        }
        handler = handlers.get(op.kind)
        if handler is None:
            raise ConversionError(f"tflite op {op.kind} is not supported by this converter")
        return handler(op)


def _batched(shape: tuple[int, ...]) -> list[int | str]:
    return ["batch", *shape[1:]]


def tflite_to_onnx(
    content: bytes, *, input_name: str, output_names: Sequence[str]
) -> onnx.ModelProto:
    """The TFLite model `content` as ONNX: one NHWC float32 input, outputs renamed in order."""
    graph = read_tflite(content)
    if len(graph.inputs) != 1 or len(graph.outputs) != len(output_names):
        raise ConversionError(
            f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
            f"expected 1 and {len(output_names)}"
        )
    builder = _Builder(graph)
    (source,) = graph.inputs
    in_shape = graph.tensors[source].shape
    builder.names[source] = input_name
    if len(in_shape) == 4:
        builder.names[source] = builder.node("Transpose", [input_name], "nchw", perm=list(_TO_NCHW))
    for op in builder.graph.ops:
        if len(op.outputs) != 1:
            raise ConversionError(f"tflite op {op.kind} with {len(op.outputs)} outputs")
        builder.names[op.outputs[0]] = builder.convert(op)
    outputs = []
    for index, name in zip(graph.outputs, output_names, strict=True):
        shape = graph.tensors[index].shape
        perm: dict[str, Any] = {"perm": list(_TO_NHWC)} if len(shape) == 4 else {}
        builder.nodes.append(
            helper.make_node(
                "Transpose" if perm else "Identity", [builder.names[index]], [name], **perm
            )
        )
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, _batched(shape)))
    onnx_graph = helper.make_graph(
        builder.nodes,
        "tflite",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, _batched(in_shape))],
        outputs,
        builder.initializers,
    )
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # onnxruntime 1.x reads IR 8 (opset 17) everywhere
    onnx.checker.check_model(model, full_check=True)
    return model
