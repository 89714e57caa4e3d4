"""Tiny ONNX models and a tiny tokenizer, generated with onnx's helper, for the runtime tests.

Why: the runtime's behaviour (batching, padding, pooling, truncation, error translation) does not
depend on the weights, so these tests need no build; the real models are tested elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers, processors

WORDS = ["red", "silk", "dress", "crimson", "satin", "gown", "engine", "oil", "filter"]
DIM = 8


def _save(graph: onnx.GraphProto, folder: Path, opset: int = 17) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # ReduceMean/ReduceMax take their axes as an input from opset 18 on.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


def write_tokenizer(folder: Path) -> None:
    """A word-level tokenizer ([CLS] text [SEP]) over WORDS, saved as tokenizer.json."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))


def embedding_model(folder: Path, *, max_length: int = 8, seed: int = 0) -> Path:
    """input_ids/attention_mask/token_type_ids [B, T] -> last_hidden_state [B, T, DIM]: a table
    lookup, masked (so padding would show if the runtime pooled it)."""
    table = np.random.default_rng(seed).normal(size=(len(WORDS) + 4, DIM)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["looked_up"]),
            helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["maskf", "axis"], ["mask3"]),
            helper.make_node("Mul", ["looked_up", "mask3"], ["last_hidden_state"]),
        ],
        "tiny_embedder",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
            for n in ("input_ids", "attention_mask")
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", DIM]
            )
        ],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis"),
        ],
    )
    path = _save(graph, folder)
    write_tokenizer(folder)
    (folder / "serving.json").write_text(json.dumps({"max_length": max_length}))
    return path


def image_model(folder: Path, *, batch: int | str = "batch") -> Path:
    """[N, 4, 4, 3] float -> mean [N, 1] and max [N, 1] of each image's pixels."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
            helper.make_node("ReduceMax", ["image", "axes"], ["max"], keepdims=0),
            helper.make_node("Unsqueeze", ["mean", "last"], ["mean_out"]),
            helper.make_node("Unsqueeze", ["max", "last"], ["max_out"]),
        ],
        "tiny_image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 4, 4, 3])],
        [
            helper.make_tensor_value_info("mean_out", TensorProto.FLOAT, [batch, 1]),
            helper.make_tensor_value_info("max_out", TensorProto.FLOAT, [batch, 1]),
        ],
        initializer=[
            numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "last"),
        ],
    )
    return _save(graph, folder, opset=18)
