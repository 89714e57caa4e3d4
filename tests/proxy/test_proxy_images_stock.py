"""Stock `litellm --config` on the repository's config serves the Fal and Vertex image tasks
through the plugins' CustomLLMs (custom_provider_map), against the emulators."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
from child_process import stock_litellm
from gateway_process import CLEARED
from PIL import Image
from provider_setup import write_config

from emulators.testing import FalHandle, VertexHandle

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-stock-images-test-key"


@contextlib.contextmanager
def _stock_litellm(tmp_path: Path, env: dict[str, str]) -> Iterator[openai.OpenAI]:
    """Stock `litellm --config` on the repository's config, and an openai SDK client of it."""
    # In-process proxies of other tests leave CONFIG_FILE_PATH (which LiteLLM prefers to
    # --config) and provider variables in this process's environment: none may leak in.
    inherited = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env = {**inherited, "LITELLM_MASTER_KEY": MASTER_KEY, "PYTHONPATH": str(ROOT), **env}
    config = write_config(tmp_path / "litellm_config.yaml")
    with (
        stock_litellm(config, env, tmp_path / "stock.log") as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as sdk,
    ):
        yield sdk


def test_stock_litellm_generates_an_image_through_the_plugin(
    tmp_path: Path, fal_emulator: FalHandle
) -> None:
    """images.generate on stock LiteLLM reaches Fal's queue through the plugin and answers."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.02, run_s=0.05)
    env = {"FAL_KEY": "fal-stock-test-key", "FAL_API_BASE": fal_emulator.url}
    with _stock_litellm(tmp_path, env) as sdk:
        images = sdk.images.generate(model="image-generation", prompt="a denim jacket")
    assert images.data is not None
    picture = Image.open(io.BytesIO(httpx.get(images.data[0].url or "").content))
    assert picture.size == (1024, 1024)
    assert fal_emulator.queue_stats()["jobs"] == 1
    fal_emulator.reset()


def test_stock_litellm_generates_a_vertex_image_through_the_plugin(
    tmp_path: Path, vertex_emulator: VertexHandle
) -> None:
    """images.generate on a vertex/ group under stock LiteLLM reaches Vertex through the
    plugin, with the group's safety settings, and answers a decodable image."""
    vertex_emulator.reset()
    account = tmp_path / "service-account.json"
    account.write_text(json.dumps(vertex_emulator.service_account()))
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(account),
        "GOOGLE_CLOUD_PROJECT": "emulated-project",
        "VERTEX_API_BASE": vertex_emulator.url,
    }
    with _stock_litellm(tmp_path, env) as sdk:
        images = sdk.images.generate(model="image-generation-fallback", prompt="a wool coat")
    assert images.data is not None and images.data[0].b64_json
    picture = Image.open(io.BytesIO(base64.b64decode(images.data[0].b64_json)))
    assert picture.width > 0 and picture.height > 0
    calls = vertex_emulator.calls()
    assert [c["model"] for c in calls] == ["gemini-3-pro-image-preview"]
    thresholds = {s["category"]: s["threshold"] for s in calls[0]["safety_settings"]}
    assert thresholds["HARM_CATEGORY_DANGEROUS_CONTENT"] == "BLOCK_NONE"
    vertex_emulator.reset()
