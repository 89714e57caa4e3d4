"""`/v1/embeddings` of the gateway with the official openai SDK, served by all-MiniLM-L6-v2 on
ONNX Runtime inside the proxy: both encodings, meaningful similarities, precise errors, and a
runner that keeps serving after bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from proxy_support import MASTER_KEY, SeededDatabase, ThreadedProxy, emulator_env, write_config
from tokenizers import Tokenizer

from emulators.testing import EmulatorHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

MODEL = "minilm-l6-v2"


@pytest.fixture(scope="module")
def embeddings_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    onnx_models: Path,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    key_database: SeededDatabase,
) -> Iterator[ThreadedProxy]:
    """The proxy over the repository's config, its models directory the built models."""

    def edit(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": key_database.url, "refresh_ms": 50}
        data["gateway_settings"]["onnx"]["models_dir"] = str(onnx_models)

    config = write_config(tmp_path_factory.mktemp("embeddings") / "litellm_config.yaml", edit)
    env = emulator_env(anthropic_emulator, openai_emulator, gemini_emulator)
    env["GATEWAY_KEY_ENCRYPTION_KEY"] = key_database.kek
    running = ThreadedProxy(ProxyServer(build_settings(config, env, master_key=MASTER_KEY), port=0))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def sdk(embeddings_proxy: ThreadedProxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{embeddings_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as client:
        yield client


def _vectors(response: Any) -> np.ndarray:
    return np.array([item.embedding for item in response.data], dtype=np.float32)


def test_the_sdks_default_base64_encoding_gives_unit_384_d_vectors(sdk: openai.OpenAI) -> None:
    """The SDK's default request (base64 float32) decodes to one unit 384-d vector per text."""
    response = sdk.embeddings.create(model="embeddings", input=["red silk dress", "satin"])
    vectors = _vectors(response)
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [item.index for item in response.data] == [0, 1]


def test_float_and_base64_encodings_carry_the_same_vectors(sdk: openai.OpenAI) -> None:
    """encoding_format "float" answers JSON numbers equal to the base64 answer's floats."""
    texts = ["a linen summer shirt", "leather ankle boots"]
    as_base64 = _vectors(sdk.embeddings.create(model="embeddings", input=texts))
    as_float = sdk.embeddings.create(model="embeddings", input=texts, encoding_format="float")
    assert isinstance(as_float.data[0].embedding[0], float)
    assert np.allclose(_vectors(as_float), as_base64, atol=1e-6)


def test_related_fashion_phrases_are_closer_than_unrelated_ones(sdk: openai.OpenAI) -> None:
    """ "red silk dress" is nearer "crimson satin gown" than "engine oil filter"."""
    dress, gown, filter_ = _vectors(
        sdk.embeddings.create(
            model="embeddings", input=["red silk dress", "crimson satin gown", "engine oil filter"]
        )
    )
    assert float(dress @ gown) > float(dress @ filter_) + 0.2


def test_a_single_string_is_one_embedding_and_its_tokens_are_counted(
    sdk: openai.OpenAI, onnx_models: Path
) -> None:
    """A plain string input gets one vector; usage.prompt_tokens counts its tokens."""
    text = "crimson satin gown with a bias cut"
    response = sdk.embeddings.create(model="embeddings", input=text)
    tokenizer = Tokenizer.from_file(str(onnx_models / MODEL / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128; the model reads the text's own tokens
    tokens = len(tokenizer.encode(text).ids)
    assert len(response.data) == 1
    assert response.usage.prompt_tokens == tokens == response.usage.total_tokens


def test_a_text_beyond_the_model_length_is_truncated_and_the_answer_says_so(
    sdk: openai.OpenAI,
) -> None:
    """A 2,000-word text is embedded from its first 256 tokens and reported as truncated."""
    long_text = " ".join(["pleated"] * 2000)
    raw = sdk.embeddings.with_raw_response.create(
        model="embeddings", input=["short", long_text], encoding_format="float"
    )
    response = raw.parse()
    assert raw.headers["x-gateway-truncated-inputs"] == "1"
    assert response.model_extra is not None and response.model_extra["truncated"] == [1]
    assert response.usage.prompt_tokens == 3 + 256


@pytest.mark.parametrize(
    ("value", "message"),
    [([], "non-empty list"), ([[101, 2417, 102]], "token ids"), (["red", None], r"input\[1\]")],
    ids=["empty-list", "token-arrays", "not-a-string"],
)
def test_bad_input_is_a_400_naming_input_and_the_runner_serves_on(
    sdk: openai.OpenAI, value: Any, message: str
) -> None:
    """An empty list, token arrays or a non-string is a 400 naming `input`; the next request
    is answered."""
    with pytest.raises(openai.BadRequestError, match=message) as refused:
        sdk.embeddings.create(model="embeddings", input=value)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "input"
    assert len(sdk.embeddings.create(model="embeddings", input="still here").data) == 1


def test_an_unknown_encoding_format_is_a_400(sdk: openai.OpenAI) -> None:
    """encoding_format other than float/base64 is refused, naming the parameter."""
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(
            model="embeddings",
            input="x",
            encoding_format="int8",  # type: ignore[arg-type]
        )
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["param"] == "encoding_format"


def test_a_wrong_gateway_key_is_a_401(embeddings_proxy: ThreadedProxy) -> None:
    """The embeddings route authenticates like every gateway route."""
    with (
        openai.OpenAI(
            base_url=f"{embeddings_proxy.url}/v1", api_key="not-a-gateway-key", max_retries=0
        ) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.embeddings.create(model="embeddings", input="red silk dress")
