"""Text embeddings on a tiny generated model: padding per batch changes nothing, vectors are
normalised, long texts are truncated and reported, bad input is refused precisely."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from onnx_tiny import embedding_model

from plugins.onnx.errors import OnnxBadInput, OnnxModelMissing
from plugins.onnx.provider import OnnxEmbeddings, OnnxModels
from plugins.onnx.settings import BatchSettings, OnnxSettings
from plugins.onnx.text_embeddings import TextEmbedder, pool_and_normalise


@pytest.fixture
async def embedder(tmp_path: Path) -> AsyncIterator[TextEmbedder]:
    embedding_model(tmp_path / "tiny", max_length=6)
    runner = TextEmbedder(
        "tiny", tmp_path / "tiny", batching=BatchSettings(max_batch=16, max_wait_ms=5)
    )
    await runner.start()
    yield runner
    await runner.stop()


async def test_a_text_alone_and_padded_in_a_batch_gets_the_same_vector(
    embedder: TextEmbedder,
) -> None:
    """Mean pooling ignores the padding a longer neighbour adds to a short text."""
    alone = (await embedder.embed(["red"])).vectors[0]
    batch = await embedder.embed(["red", "red silk dress gown"])
    assert np.allclose(batch.vectors[0], alone, atol=1e-6)
    assert embedder.batcher.stats.largest == 2


async def test_vectors_are_unit_length_float32(embedder: TextEmbedder) -> None:
    """Each vector is L2-normalised float32."""
    result = await embedder.embed(["engine oil filter", "satin"])
    assert result.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-6)


async def test_concurrent_requests_share_batches(embedder: TextEmbedder) -> None:
    """Sixteen concurrent single-text requests run as one batch."""
    results = await asyncio.gather(*(embedder.embed(["red silk"]) for _ in range(16)))
    assert len(results) == 16
    assert embedder.batcher.stats.batches == 1 and embedder.batcher.stats.largest == 16


async def test_tokens_are_counted_and_a_long_text_is_truncated_and_reported(
    embedder: TextEmbedder,
) -> None:
    """A text beyond max_length (6 tokens with [CLS]/[SEP]) is cut, listed and counted at 6."""
    result = await embedder.embed(["red", "red silk dress crimson satin gown engine"])
    assert result.truncated == (1,)
    assert result.tokens == 3 + 6


async def test_an_empty_list_and_a_non_string_are_refused(embedder: TextEmbedder) -> None:
    """No texts, or a number among them, is OnnxBadInput naming `input`; the model serves on."""
    with pytest.raises(OnnxBadInput) as empty:
        await embedder.embed([])
    assert empty.value.param == "input" and empty.value.status_code == 400
    with pytest.raises(OnnxBadInput, match=r"input\[1\]"):
        await embedder.embed(["red", 7])  # type: ignore[list-item]
    assert (await embedder.embed(["red"])).vectors.shape == (1, 8)


def test_pooling_of_an_already_pooled_output_only_normalises() -> None:
    """A [batch, dim] output is taken as the sentence vector and only scaled to unit length."""
    pooled = pool_and_normalise(np.array([[3.0, 4.0]], np.float32), np.ones((1, 5), np.int64))
    assert np.allclose(pooled, [[0.6, 0.8]])


async def test_the_provider_serves_a_model_by_its_deployment_name(tmp_path: Path) -> None:
    """OnnxEmbeddings serves `onnx/<name>` from the models directory of its config file."""
    embedding_model(tmp_path / "models" / "tiny")
    config = tmp_path / "litellm_config.yaml"
    config.write_text("gateway_settings:\n  onnx:\n    models_dir: models\n")
    provider = OnnxEmbeddings(config)
    await provider.start()
    try:
        await provider.prepare("onnx/tiny")
        result = await provider.embed("onnx/tiny", ["red silk"])
    finally:
        await provider.stop()
    assert result.vectors.shape == (1, 8)


async def test_a_model_not_built_names_the_build_command(tmp_path: Path) -> None:
    """Asking for a model that is not under models_dir is OnnxModelMissing naming the build."""
    models = OnnxModels(OnnxSettings(), tmp_path)
    with pytest.raises(OnnxModelMissing, match="gateway models build"):
        await models.embedder("minilm-l6-v2")
