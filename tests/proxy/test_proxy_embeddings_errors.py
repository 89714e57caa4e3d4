"""The embeddings route's failures as clients see them: a busy model is a retriable 429 with
Retry-After, a model not built is a 503 naming the build command, and models that are not
self-hosted fall through to LiteLLM's app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from core.redact import Redactor
from proxy.auth import Authenticator
from proxy.embeddings import EmbeddingsApp
from proxy.fastpath import GatewayApp
from proxy.keys import KeyResolver
from proxy.resilience import Resilience
from proxy.routing import RoutingTable
from proxy.settings import ResilienceSettings
from tests.plugins.onnx_tiny import embedding_model

MASTER_KEY = "plain-embeddings-master-key-7a1b"
_CONFIG = {
    "model_list": [
        {"model_name": "embeddings", "litellm_params": {"model": "onnx/tiny"}},
        {"model_name": "embeddings-unbuilt", "litellm_params": {"model": "onnx/minilm-l6-v2"}},
        {"model_name": "chatty", "litellm_params": {"model": "openai/gpt-4o"}},
    ]
}


async def _litellm_stand_in(_scope: object, _receive: object, send: object) -> None:
    """What answers for LiteLLM's app here: a 418, so falling through is visible."""
    await send({"type": "http.response.start", "status": 418, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]


@pytest.fixture
async def sdk(tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    """The openai SDK on the fast path + embeddings route, served in this loop; the tiny model
    batches one text at a time behind a queue of one."""
    embedding_model(tmp_path / "models" / "tiny")
    config = tmp_path / "litellm_config.yaml"
    config.write_text(
        "gateway_settings:\n"
        "  embeddings: {providers: {onnx: plugins.onnx.provider:OnnxEmbeddings}}\n"
        "  onnx:\n"
        "    models_dir: models\n"
        "    batching: {max_batch: 1, max_wait_ms: 0, max_queue: 1}\n"
    )
    redactor = Redactor()
    routing = RoutingTable.from_config(_CONFIG, {})
    embeddings = EmbeddingsApp.from_config(
        _litellm_stand_in, config_path=str(config), routing=routing, redactor=redactor
    )
    settings = ResilienceSettings(attempts=1, backoff_base_s=0.01, backoff_max_s=0.01)
    app = GatewayApp(
        embeddings,
        routing=routing,
        authenticator=Authenticator(MASTER_KEY, redactor=redactor),
        resilience=Resilience(settings, KeyResolver({}, redactor=redactor), redactor=redactor),
        request_timeout_s=10,
        redactor=redactor,
    )
    await embeddings.start()
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as http,
        openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key=MASTER_KEY, max_retries=0, http_client=http
        ) as client,
    ):
        yield client
    await embeddings.stop()


async def test_a_busy_model_is_a_retriable_429_with_retry_after(sdk: openai.AsyncOpenAI) -> None:
    """Of two concurrent 40-text requests on a queue of one, the second is refused with 429,
    Retry-After and x-gateway-retriable: true; the first is answered in full."""
    texts = ["red silk dress"] * 40
    answers = await asyncio.gather(
        *(sdk.embeddings.create(model="embeddings", input=texts) for _ in range(2)),
        return_exceptions=True,
    )
    refused = [a for a in answers if isinstance(a, openai.RateLimitError)]
    served = [a for a in answers if not isinstance(a, BaseException)]
    assert len(refused) == 1 and len(served) == 1
    assert len(served[0].data) == 40
    headers = refused[0].response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["x-gateway-retriable"] == "true"
    assert isinstance(refused[0].body, dict) and refused[0].body["code"] == "model_overloaded"


async def test_a_model_not_built_is_a_503_naming_the_build_command(
    sdk: openai.AsyncOpenAI,
) -> None:
    """A task whose model was never built answers 503 saying to run `gateway models build`."""
    with pytest.raises(openai.InternalServerError, match="gateway models build") as failed:
        await sdk.embeddings.create(model="embeddings-unbuilt", input="red silk dress")
    assert failed.value.status_code == 503
    assert failed.value.response.headers["x-gateway-retriable"] == "false"


async def test_models_that_are_not_self_hosted_fall_through_to_litellm(
    sdk: openai.AsyncOpenAI,
) -> None:
    """An embeddings request for a task of another provider, or no task, reaches LiteLLM's app."""
    for model in ("chatty", "text-embedding-3-small"):
        with pytest.raises(openai.APIStatusError) as answered:
            await sdk.embeddings.create(model=model, input="red silk dress")
        assert answered.value.status_code == 418
