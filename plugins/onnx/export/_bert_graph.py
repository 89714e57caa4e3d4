"""A BERT sentence encoder as an ONNX graph, built from a safetensors checkpoint without torch.

Why it exists: all-MiniLM-L6-v2 is a plain `BertModel` (absolute positions, post-LayerNorm,
exact erf GELU) followed by sentence-transformers' mean pooling and L2 normalisation; writing
that forward pass as ONNX ops over the checkpoint's numpy arrays keeps torch out of the build.
Every checkpoint tensor must be used exactly once (the [CLS] pooler aside), so a renamed or
misshaped tensor fails the conversion instead of exporting a wrong model.

Layout choices, for ONNX Runtime's CPU kernels: the query/key/value projections are one MatMul
over weights transposed and concatenated at build time, the attention mask becomes an additive
bias once per batch (not per layer), GELU is written as the Div/Erf/Add/Mul chain that ONNX
Runtime fuses (with the bias Add before it) into BiasGelu, and shapes stay inferable so each
residual Add + LayerNormalization fuses into SkipLayerNormalization. On CPU it runs as fast as
the torch export did.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from plugins.onnx.export._graph import GraphBuilder
from plugins.onnx.export.errors import ConversionError

__all__ = ["HIDDEN_STATES", "INPUTS", "OUTPUT", "BertConfig", "bert_encoder", "read_safetensors"]

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"
# The last hidden states [batch, sequence, hidden] carry this name inside the graph (not an
# output), so a check can expose them and compare token by token.
HIDDEN_STATES = "last_hidden_state"

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
_UNUSED = ("pooler.dense.weight", "pooler.dense.bias")  # next-sentence head, never pooled


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file: 8-byte little-endian header length, a JSON header
    {name: {dtype, shape, data_offsets}} (offsets relative to the data after it), raw bytes."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if info["dtype"] not in _DTYPES or not 0 <= start <= end <= len(data) - base:
            raise ConversionError(f"{path}: tensor {name!r} has an unreadable entry {info}")
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        array = np.frombuffer(data, dtype=dtype, count=(end - start) // dtype.itemsize,
                              offset=base + start)  # fmt: skip
        tensors[name] = array.reshape(info["shape"]).astype(dtype.newbyteorder("="))
    return tensors


@dataclass(frozen=True, slots=True)
class BertConfig:
    """The fields of a Hugging Face `config.json` that the forward pass depends on."""

    hidden_size: int
    layers: int
    heads: int
    eps: float

    @classmethod
    def load(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text())
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ConversionError(f"{path}: only absolute position embeddings are implemented")
        if raw["hidden_act"] != "gelu":
            raise ConversionError(f"{path}: only the exact (erf) GELU is implemented")
        return cls(
            hidden_size=raw["hidden_size"], layers=raw["num_hidden_layers"],
            heads=raw["num_attention_heads"], eps=raw["layer_norm_eps"],
        )  # fmt: skip


class _Weights:
    """The checkpoint's tensors, handed out once each; `finish()` refuses leftovers."""

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        self._left = {k: v for k, v in tensors.items() if k not in _UNUSED}

    def __call__(self, name: str) -> np.ndarray:
        try:
            return self._left.pop(name).astype(np.float32)
        except KeyError:
            raise ConversionError(f"checkpoint has no tensor {name!r}") from None

    def optional(self, name: str) -> np.ndarray | None:
        """A tensor only some checkpoints carry (a saved buffer), as stored."""
        return self._left.pop(name, None)

    def finish(self) -> None:
        if self._left:
            raise ConversionError(f"checkpoint tensors left unused: {sorted(self._left)}")


def bert_encoder(config: BertConfig, tensors: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """input_ids, attention_mask, token_type_ids (int64 [batch, sequence]) -> sentence_embedding
    float32 [batch, hidden]: the last hidden states averaged over the attended tokens and
    L2-normalised, as sentence-transformers' Pooling + Normalize modules do after BertModel."""
    g = GraphBuilder("bert_sentence_encoder")
    ids, mask, types = (g.input(name, np.int64, ["batch", "sequence"]) for name in INPUTS)
    net = _Bert(g, _Weights(tensors), config)
    x = net.embeddings(ids, types)
    maskf = g.op("Cast", mask, to=onnx.TensorProto.FLOAT)
    # transformers' extended attention mask: 0 where attended, float32 min where padded,
    # broadcast over heads and query positions: [batch, 1, 1, sequence].
    lowest = g.const(float(np.finfo(np.float32).min))
    bias = g.op("Unsqueeze", g.op("Mul", g.op("Sub", g.const(1.0), maskf), lowest), g.const([1, 2]))
    for i in range(config.layers):
        x = net.layer(f"encoder.layer.{i}", x, bias)
    net.w.finish()
    # An Identity naming the hidden states (not a graph output; ONNX Runtime drops it).
    hidden = g.output(x, HIDDEN_STATES)
    weights = g.op("Unsqueeze", maskf, g.const([2]))  # [batch, sequence, 1]
    summed = g.op("ReduceSum", g.op("Mul", hidden, weights), g.const([1]), keepdims=0)
    count = g.op("Clip", g.op("ReduceSum", weights, g.const([1]), keepdims=0), g.const(1e-9))
    pooled = g.op("Div", summed, count)
    # torch.nn.functional.normalize: x / max(||x||, 1e-12).
    norm = g.op("Clip", g.op("ReduceL2", pooled, axes=[1], keepdims=1), g.const(1e-12))
    g.output(g.op("Div", pooled, norm), OUTPUT)
    return g.model([(OUTPUT, np.float32, ["batch", config.hidden_size])])


class _Bert:
    """BertModel's blocks, each taking the checkpoint prefix of its parameters."""

    def __init__(self, g: GraphBuilder, w: _Weights, c: BertConfig) -> None:
        self.g, self.w, self.c = g, w, c

    def embeddings(self, ids: str, types: str) -> str:
        g, w, p = self.g, self.w, "embeddings"
        words = g.op("Gather", g.const(w(f"{p}.word_embeddings.weight"), "word_emb"), ids)
        kinds = g.op("Gather", g.const(w(f"{p}.token_type_embeddings.weight"), "type_emb"), types)
        rows = w(f"{p}.position_embeddings.weight")
        # A saved copy of transformers' position_ids buffer, when present, must be 0, 1, 2, ...
        saved = w.optional(f"{p}.position_ids")
        if saved is not None and not np.array_equal(saved.reshape(-1), np.arange(len(rows))):
            raise ConversionError("checkpoint's position_ids are not 0, 1, 2, ...")
        # Positions 0..sequence-1 per row as a cumulative sum of ones shaped like input_ids:
        # unlike slicing the table, this keeps the [batch, sequence] shape visible to ONNX
        # Runtime's shape inference, which its SkipLayerNormalization fusion needs.
        ones = g.op("Add", g.op("Mul", ids, g.const(0)), g.const(1))
        index = g.op("Sub", g.op("CumSum", ones, g.const(1)), g.const(1))
        positions = g.op("Gather", g.const(rows, "position_emb"), index)
        return self.layer_norm(f"{p}.LayerNorm", g.op("Add", g.op("Add", words, kinds), positions))

    def layer(self, p: str, x: str, bias: str) -> str:
        g = self.g
        context = self.self_attention(f"{p}.attention.self", x, bias)
        attended = g.op("Add", self.linear(f"{p}.attention.output.dense", context), x)
        attended = self.layer_norm(f"{p}.attention.output.LayerNorm", attended)
        h = self.linear(f"{p}.intermediate.dense", attended)
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt(2))).
        erf = g.op("Erf", g.op("Div", h, g.const(math.sqrt(2.0))))
        h = g.op("Mul", g.op("Mul", h, g.op("Add", erf, g.const(1.0))), g.const(0.5))
        out = g.op("Add", self.linear(f"{p}.output.dense", h), attended)
        return self.layer_norm(f"{p}.output.LayerNorm", out)

    def self_attention(self, p: str, x: str, bias: str) -> str:
        g, w, c = self.g, self.w, self.c
        head = c.hidden_size // c.heads
        names = ("query", "key", "value")
        weight = np.concatenate([w(f"{p}.{n}.weight") for n in names], axis=0)
        qkv = g.linear(x, weight, np.concatenate([w(f"{p}.{n}.bias") for n in names]))
        q, k, v = g.ops("Split", [qkv, g.const([c.hidden_size] * 3)], 3, axis=2)
        split = g.const([0, 0, c.heads, head])  # [batch, sequence, heads, head]

        def heads(t: str, perm: list[int]) -> str:
            return g.op("Transpose", g.op("Reshape", t, split), perm=perm)

        scores = g.op("MatMul", heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1]))
        scores = g.op("Add", g.op("Div", scores, g.const(math.sqrt(head))), bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), heads(v, [0, 2, 1, 3]))
        merged = g.op("Transpose", context, perm=[0, 2, 1, 3])
        return g.op("Reshape", merged, g.const([0, 0, c.hidden_size]))

    def linear(self, p: str, x: str) -> str:
        return self.g.linear(x, self.w(f"{p}.weight"), self.w(f"{p}.bias"))

    def layer_norm(self, p: str, x: str) -> str:
        return self.g.layer_norm(x, self.w(f"{p}.weight"), self.w(f"{p}.bias"), eps=self.c.eps)
