"""Switching face detection from Fal to the self-hosted model is an edit of litellm_config.yaml
alone: the same `gateway up` process kind, the same openai SDK call, the same JSON shape."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import openai
import pytest
import yaml
from gateway_process import gateway_up
from PIL import Image
from provider_setup import write_config

from plugins.fal.vision import FACES_SCHEMA, MASKS_SCHEMA
from tests.plugins.onnx_vision_data import GROUP_FACES, group_photo, portrait

MASTER_KEY = "sk-gw-onnx-switch-test-key"
# Anything that would make `gateway up` use a real provider or a shared service.


@contextmanager
def _gateway(config: Path) -> Iterator[str]:
    """`gateway up --no-kafka` on `config` without provider keys, until the block ends."""
    with gateway_up(config, master_key=MASTER_KEY) as running:
        yield running.url


def _data_url(image: Image.Image) -> str:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _ask(url: str, task: str, image: str, text: str) -> tuple[dict[str, Any], str]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model=task,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text},
                        {"type": "image_url", "image_url": {"url": image}},
                    ],
                }
            ],
        )
    answer: dict[str, Any] = json.loads(raw.parse().choices[0].message.content or "")
    return answer, raw.headers["x-gateway-provider"]


def _select_onnx(config: Path) -> None:
    """The operator's edit: the vision tasks' models become the self-hosted ones."""
    local = {
        "face-detection": "onnx/blazeface-full-range",
        "segmentation": "onnx/selfie-segmentation",
    }
    data = yaml.safe_load(config.read_text())
    for entry in data["model_list"]:
        if entry["model_name"] in local:
            entry["litellm_params"] = {"model": local[entry["model_name"]]}
    config.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, onnx_models: Path) -> Path:
    def models_dir(data: dict[str, Any]) -> None:
        data["gateway_settings"]["onnx"]["models_dir"] = str(onnx_models)

    return write_config(tmp_path_factory.mktemp("switch") / "litellm_config.yaml", models_dir)


@pytest.fixture(scope="module")
def photo() -> str:
    return _data_url(group_photo())


@pytest.fixture(scope="module")
def from_fal(config: Path, photo: str) -> tuple[dict[str, Any], str]:
    """The face-detection answer of a gateway on the repository's config (Fal, emulated)."""
    with _gateway(config) as url:
        return _ask(url, "face-detection", photo, "face")


@pytest.fixture(scope="module")
def local_gateway(config: Path, from_fal: tuple[dict[str, Any], str]) -> Iterator[str]:
    """A gateway on the same config after the edit (started once Fal has answered)."""
    _select_onnx(config)
    with _gateway(config) as url:
        yield url


def test_face_detection_moves_from_fal_to_onnx_by_a_config_edit(
    from_fal: tuple[dict[str, Any], str], local_gateway: str, photo: str
) -> None:
    """Fal (its emulator) answers first; after the config edit the local BlazeFace answers the
    same call with the same JSON shape, finding the photo's six faces."""
    local = _ask(local_gateway, "face-detection", photo, "face")
    assert (from_fal[1], local[1]) == ("fal", "onnx")
    for answer, _ in (from_fal, local):
        jsonschema.validate(answer, FACES_SCHEMA)
        assert (answer["width"], answer["height"]) == (1280, 886)
    assert from_fal[0].keys() == local[0].keys()
    assert len(local[0]["faces"]) == GROUP_FACES


def test_segmentation_is_served_by_the_local_model_after_the_edit(local_gateway: str) -> None:
    """The segmentation task answers MASKS_SCHEMA JSON from selfie segmentation: one person
    mask, a PNG of the portrait's size covering a sensible share of it."""
    answer, provider = _ask(local_gateway, "segmentation", _data_url(portrait()), "person")
    assert provider == "onnx"
    jsonschema.validate(answer, MASKS_SCHEMA)
    (mask,) = answer["masks"]
    png = Image.open(io.BytesIO(base64.b64decode(mask["url"].split(",", 1)[1])))
    assert png.size == (answer["width"], answer["height"]) == (512, 512)
    foreground = float(np.asarray(png.convert("L")).mean()) / 255
    assert 0.2 < foreground < 0.8
