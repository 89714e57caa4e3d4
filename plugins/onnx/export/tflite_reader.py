"""A TFLite flatbuffer read into plain typed records (tensors, constant data, operators).

Why it exists: the `tflite` package is generated flatbuffer code with no types and one accessor
per field; the converter (`tflite_onnx`) should see only what it converts. Constants stored as
float16 or int8 behind a DEQUANTIZE are turned into float32 here, so the ONNX graph carries
plain float weights and no dequantise nodes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tflite  # type: ignore[import-untyped]  # generated flatbuffer code, no types

from plugins.onnx.export.errors import ConversionError

__all__ = ["TfliteGraph", "TfliteOp", "TfliteTensor", "dequantise", "read_tflite"]


_DTYPES: dict[int, Any] = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8,
}
_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_ACTIVATIONS = {
    v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")
}
_PADDINGS = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}
# Builtin option tables the converter reads, and the fields it takes from each.
_OPTIONS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "CONV_2D": (
        tflite.Conv2DOptions,
        ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor", "Fused"),
    ),
    "DEPTHWISE_CONV_2D": (
        tflite.DepthwiseConv2DOptions,
        ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor", "Fused"),
    ),
    "MAX_POOL_2D": (
        tflite.Pool2DOptions,
        ("Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth", "Fused"),
    ),
    "AVERAGE_POOL_2D": (
        tflite.Pool2DOptions,
        ("Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth", "Fused"),
    ),
    "ADD": (tflite.AddOptions, ("Fused",)),
    "MUL": (tflite.MulOptions, ("Fused",)),
    "CONCATENATION": (tflite.ConcatenationOptions, ("Axis", "Fused")),
    "RESIZE_BILINEAR": (tflite.ResizeBilinearOptions, ("AlignCorners", "HalfPixelCenters")),
    "RESHAPE": (tflite.ReshapeOptions, ("NewShape",)),
}


@dataclass(frozen=True, slots=True)
class TfliteTensor:
    """One tensor: its static shape and, for a constant, its data (float32 once dequantised)."""

    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None


@dataclass(frozen=True, slots=True)
class TfliteOp:
    """One operator: builtin name (or ``CUSTOM:<code>``), tensor indices and decoded options."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TfliteGraph:
    """The first subgraph of a model, DEQUANTIZE of constants already folded."""

    tensors: tuple[TfliteTensor, ...]
    ops: tuple[TfliteOp, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _vector(value: Any) -> np.ndarray:
    # flatbuffers answers the integer 0 for an absent vector.
    return np.zeros(0) if isinstance(value, int) else np.asarray(value)


def _constant(model: Any, tensor: Any) -> np.ndarray | None:
    data = _vector(model.Buffers(tensor.Buffer()).DataAsNumpy())
    if data.size == 0:
        return None
    dtype = _DTYPES.get(tensor.Type())
    if dtype is None:
        raise ConversionError(
            f"tflite tensor {tensor.Name()!r} has unsupported type {tensor.Type()}"
        )
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    return np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape).copy()


def dequantise(
    data: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int
) -> np.ndarray:
    """A DEQUANTIZE of constant `data`: float16 widened, integers as (q - zero) * scale, per
    tensor (one scale) or per channel along `axis`."""
    if data.dtype == np.float16:
        return data.astype(np.float32)
    if scale.size == 0:
        raise ConversionError(f"an integer constant of shape {data.shape} has no scale")
    scale, zero = scale.astype(np.float32), zero_point.astype(np.float32)
    if scale.size > 1:
        shape = [1] * data.ndim
        shape[axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    result: np.ndarray = ((data.astype(np.float32) - zero) * scale).astype(np.float32)
    return result


def _dequantised(tensor: Any, data: np.ndarray) -> np.ndarray:
    quant = tensor.Quantization()
    if quant is None:
        return dequantise(data, np.zeros(0), np.zeros(0), 0)
    scale, zero = _vector(quant.ScaleAsNumpy()), _vector(quant.ZeroPointAsNumpy())
    if zero.size == 0:
        zero = np.zeros_like(scale)
    return dequantise(data, scale, zero, quant.QuantizedDimension())


def _options(op: Any, kind: str) -> dict[str, Any]:
    if kind.startswith("CUSTOM:"):
        return {"custom": _vector(op.CustomOptionsAsNumpy()).tobytes()}
    spec = _OPTIONS.get(kind)
    table = op.BuiltinOptions()
    if spec is None or table is None:
        return {}
    cls, fields = spec
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    decoded: dict[str, Any] = {}
    for name in fields:
        if name == "Fused":
            decoded[name] = _ACTIVATIONS[opts.FusedActivationFunction()]
        elif name == "Padding":
            decoded[name] = _PADDINGS[opts.Padding()]
        elif name == "NewShape":
            decoded[name] = (
                tuple(int(d) for d in opts.NewShapeAsNumpy()) if opts.NewShapeLength() else None
            )
        else:
            decoded[name] = getattr(opts, name)()
    return decoded


def read_tflite(content: bytes) -> TfliteGraph:
    """The first subgraph of the TFLite model `content`, constants as numpy arrays."""
    try:
        model = tflite.Model.GetRootAsModel(content, 0)
        graph = model.Subgraphs(0)
    except (struct.error, IndexError, TypeError) as exc:
        raise ConversionError(f"not a TFLite flatbuffer: {exc}") from exc
    raw = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    data: list[np.ndarray | None] = [_constant(model, t) for t in raw]
    ops: list[TfliteOp] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = _OP_NAMES.get(number, str(number))
        if kind == "CUSTOM":
            kind = "CUSTOM:" + code.CustomCode().decode()
        inputs = tuple(int(t) for t in op.InputsAsNumpy())
        outputs = tuple(int(t) for t in op.OutputsAsNumpy())
        source = data[inputs[0]] if kind == "DEQUANTIZE" else None
        if kind == "DEQUANTIZE" and source is not None:
            data[outputs[0]] = _dequantised(raw[inputs[0]], source)
            continue
        ops.append(TfliteOp(kind, inputs, outputs, _options(op, kind)))
    tensors = tuple(
        TfliteTensor(
            t.Name().decode(),
            tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
            data[i],
        )
        for i, t in enumerate(raw)
    )
    return TfliteGraph(
        tensors,
        tuple(ops),
        tuple(int(t) for t in graph.InputsAsNumpy()),
        tuple(int(t) for t in graph.OutputsAsNumpy()),
    )
