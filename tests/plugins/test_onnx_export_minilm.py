"""all-MiniLM-L6-v2 converted without torch: the graph builder and the built model."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import pytest
from onnx_support import WHEELS_DIR
from tokenizers import Tokenizer

from plugins.onnx.export._bert_graph import BertConfig, bert_encoder, read_safetensors
from plugins.onnx.export.errors import ConversionError
from plugins.onnx.export.minilm import SPEC
from plugins.onnx.export.wheels import WheelCache

ROOT = Path(__file__).resolve().parents[2]


def test_minilm_builds_and_passes_its_check_with_torch_unimportable(tmp_path: Path) -> None:
    """The whole build of the model, catalog included, runs where `import torch` fails."""
    code = (
        "import json, sys\n"
        "sys.modules['torch'] = None  # any import of torch now raises ImportError\n"
        "from pathlib import Path\n"
        "from plugins.onnx.export import build_models\n"
        f"manifest = build_models(['minilm-l6-v2'], Path({str(tmp_path)!r}),"
        f" wheels_dir=Path({str(WHEELS_DIR)!r}))\n"
        "entry = manifest.models['minilm-l6-v2']\n"
        "def info(ts): return [[t.name, t.dtype, t.shape] for t in ts]\n"
        "print(json.dumps({'max_error': entry.max_error, 'inputs': info(entry.inputs),"
        " 'outputs': info(entry.outputs)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert built["max_error"] <= SPEC.tolerance
    assert built["inputs"] == [
        [name, "int64", ["batch", "sequence"]]
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    assert built["outputs"] == [["sentence_embedding", "float32", ["batch", 384]]]
    folder = tmp_path / SPEC.name
    assert json.loads((folder / "serving.json").read_text()) == {
        "max_length": 256,
        "normalize": True,
    }
    assert Tokenizer.from_file(str(folder / "tokenizer.json")).encode("dress").tokens[0] == "[CLS]"


def test_a_text_padded_into_a_batch_embeds_as_it_does_alone(onnx_models: Path) -> None:
    """Padding tokens change nothing: the attention mask keeps them out of attention and pooling."""
    folder = onnx_models / SPEC.name
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

    def embed(texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        assert feeds["attention_mask"].min() == (0 if len(texts) > 1 else 1)
        return np.asarray(session.run(["sentence_embedding"], feeds)[0])

    long = "A knee-length wool coat in camel with horn buttons and deep patch pockets."
    alone, padded = embed(["red silk dress"]), embed(["red silk dress", long])
    assert float(np.max(np.abs(alone[0] - padded[0]))) < 1e-5
    assert float(np.linalg.norm(padded[1])) == pytest.approx(1.0, abs=1e-5)


def test_safetensors_are_read_as_their_header_describes(tmp_path: Path) -> None:
    """Each tensor comes back with its dtype, shape and bytes; the metadata entry is skipped."""
    weights = np.arange(6, dtype="<f4").reshape(2, 3) / 4
    ids = np.array([[0, 1, 2]], dtype="<i8")
    header = {
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "ids": {"dtype": "I64", "shape": [1, 3], "data_offsets": [24, 48]},
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + weights.tobytes() + ids.tobytes())
    tensors = read_safetensors(path)
    assert sorted(tensors) == ["ids", "w"]
    np.testing.assert_array_equal(tensors["w"], weights)
    assert tensors["w"].dtype == np.float32
    np.testing.assert_array_equal(tensors["ids"], ids)


def test_a_safetensors_entry_pointing_past_the_data_is_refused(tmp_path: Path) -> None:
    """A header whose offsets run past the file's end is named, not read as garbage."""
    raw = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    with pytest.raises(ConversionError, match="'w'"):
        read_safetensors(path)


@pytest.fixture(scope="module")
def checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BertConfig, dict[str, np.ndarray]]:
    cache = WheelCache(WHEELS_DIR)
    folder = tmp_path_factory.mktemp("minilm")
    sources = {s.key: cache.extract(s, folder) for s in SPEC.sources}
    return BertConfig.load(sources["config"]), read_safetensors(sources["weights"])


def test_a_checkpoint_missing_a_tensor_is_refused_naming_it(
    checkpoint: tuple[BertConfig, dict[str, np.ndarray]],
) -> None:
    """A tensor the forward pass needs but the file lacks fails the conversion by name."""
    config, tensors = checkpoint
    partial = {k: v for k, v in tensors.items() if k != "encoder.layer.3.output.dense.bias"}
    with pytest.raises(ConversionError, match=r"encoder\.layer\.3\.output\.dense\.bias"):
        bert_encoder(config, partial)


def test_a_checkpoint_with_an_unknown_tensor_is_refused_naming_it(
    checkpoint: tuple[BertConfig, dict[str, np.ndarray]],
) -> None:
    """A tensor the graph would silently ignore (another architecture's) fails the conversion."""
    config, tensors = checkpoint
    extra = {**tensors, "encoder.layer.0.attention.self.rotary.weight": np.zeros(4, np.float32)}
    with pytest.raises(ConversionError, match="rotary"):
        bert_encoder(config, extra)
