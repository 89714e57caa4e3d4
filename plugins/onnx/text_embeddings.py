"""Sentence embeddings from a BERT-style ONNX model (all-MiniLM-L6-v2): tokenise, batch, pool.

Why it exists: `/v1/embeddings` and in-process callers need one vector per text. Texts are
tokenised in the caller (the `tokenizers` library, from the tokenizer.json the build writes next
to model.onnx), truncated at the model's maximum length (and reported as truncated), gathered
with other callers' texts by the micro-batcher, padded per batch to the longest, run, then
mean-pooled over the real tokens and L2-normalised in numpy. A model whose output is already
one vector per text ([batch, dim]) is only normalised.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from plugins.onnx.batching import MicroBatcher
from plugins.onnx.errors import OnnxBadInput, OnnxError, OnnxModelMissing, OnnxModelUnavailable
from plugins.onnx.session import ModelSession, SessionOptions
from plugins.onnx.settings import BatchSettings

__all__ = ["Embeddings", "TextEmbedder", "pool_and_normalise"]

# all-MiniLM-L6-v2's max_seq_length (sentence-transformers' setting) when serving.json is absent.
_DEFAULT_MAX_LENGTH = 256
# Texts longer than this many characters are refused before tokenising (a 256-token model reads
# the first ~1,500 characters; megabytes of text would only cost tokeniser time).
MAX_TEXT_CHARS = 200_000
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_POOLED = "sentence_embedding"


@dataclass(frozen=True, slots=True)
class _Tokens:
    ids: np.ndarray  # int64 [length]
    type_ids: np.ndarray


@dataclass(frozen=True, slots=True)
class Embeddings:
    """One L2-normalised float32 vector per text, and what the texts cost."""

    vectors: np.ndarray  # float32 [texts, dim]
    tokens: int  # tokens the model read (special tokens included, after truncation)
    truncated: tuple[int, ...]  # indices of the texts cut at the model's maximum length


def pool_and_normalise(output: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the real tokens of [batch, tokens, dim] (or [batch, dim] as is), then L2."""
    if output.ndim == 3:
        weights = mask.astype(np.float32)[:, :, None]
        summed = (output * weights).sum(axis=1)
        pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    elif output.ndim == 2:
        pooled = output
    else:
        raise OnnxModelUnavailable(f"embedding output of rank {output.ndim} is not supported")
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


class TextEmbedder:
    """A text-embedding model with its tokenizer and batcher; `start()` before `embed`."""

    def __init__(
        self,
        name: str,
        folder: Path,
        *,
        batching: BatchSettings,
        options: SessionOptions | None = None,
    ) -> None:
        self.name = name
        self._folder = folder
        self._session = ModelSession(name, folder, options)
        self._batcher = MicroBatcher[_Tokens, np.ndarray](name, self._run, batching)
        self._tokenizer: Tokenizer | None = None
        self._inputs: tuple[str, ...] = ()
        self._outputs: list[str] = []
        self.max_length = _DEFAULT_MAX_LENGTH

    @property
    def batcher(self) -> MicroBatcher[_Tokens, np.ndarray]:
        return self._batcher

    @property
    def session(self) -> ModelSession:
        return self._session

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        await self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()
        self._session.close()

    def _load(self) -> None:
        path = self._folder / "tokenizer.json"
        if not path.is_file():
            raise OnnxModelMissing.for_path(self.name, path)
        serving = self._folder / "serving.json"
        if serving.is_file():
            self.max_length = int(json.loads(serving.read_text())["max_length"])
        tokenizer = Tokenizer.from_file(str(path))
        # The file may pad every text to a fixed length; batches pad to their longest instead.
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_length)
        self._tokenizer = tokenizer
        self._session.load()
        names = {i.name for i in self._session.inputs}
        if "input_ids" not in names:
            raise OnnxModelUnavailable(f"model {self.name!r} has no input_ids input")
        self._inputs = tuple(n for n in _INPUTS if n in names)
        # A model that pools and normalises itself (the build's MiniLM does) is asked for that
        # output only, which also spares copying the per-token states out of onnxruntime.
        outputs = [o.name for o in self._session.outputs]
        self._outputs = [_POOLED] if _POOLED in outputs else outputs[:1]

    def tokenize(self, texts: Sequence[str]) -> tuple[list[_Tokens], int, tuple[int, ...]]:
        """Each text's token ids, the token count, and which texts were truncated."""
        if self._tokenizer is None:
            raise OnnxModelUnavailable(f"model {self.name!r} is not loaded")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise OnnxBadInput(f"input[{index}] is not a string", param="input")
            if len(text) > MAX_TEXT_CHARS:
                raise OnnxBadInput(
                    f"input[{index}] has {len(text)} characters; at most {MAX_TEXT_CHARS}",
                    param="input",
                )
        encodings = (
            [self._tokenizer.encode(texts[0])]
            if len(texts) == 1  # encode_batch's thread pool costs more than one text
            else self._tokenizer.encode_batch(list(texts))
        )
        tokens = [
            _Tokens(np.asarray(e.ids, dtype=np.int64), np.asarray(e.type_ids, dtype=np.int64))
            for e in encodings
        ]
        truncated = tuple(i for i, e in enumerate(encodings) if e.overflowing)
        return tokens, sum(len(t.ids) for t in tokens), truncated

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """The embeddings of `texts` (at least one), batched with concurrent callers' texts."""
        if not texts:
            raise OnnxBadInput("input must hold at least one text", param="input")
        tokens, count, truncated = self.tokenize(texts)
        vectors = await self._batcher.submit_many(tokens)
        return Embeddings(vectors=np.stack(vectors), tokens=count, truncated=truncated)

    async def _run(self, batch: Sequence[_Tokens]) -> list[np.ndarray | OnnxError]:
        longest = max(len(t.ids) for t in batch)
        ids = np.zeros((len(batch), longest), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, item in enumerate(batch):
            ids[row, : len(item.ids)] = item.ids
            types[row, : len(item.ids)] = item.type_ids
            mask[row, : len(item.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        outputs = await self._session.run({n: feeds[n] for n in self._inputs}, self._outputs)
        return list(pool_and_normalise(outputs[0], mask))
