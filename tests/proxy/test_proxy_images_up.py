"""`gateway up` on the embedded default serves image generation: the Fal emulator is started
for the missing FAL_KEY and the official openai SDK gets images with two LoRAs."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Iterator

import openai
import pytest
from gateway_process import gateway_up
from PIL import Image
from provider_setup import write_config

MASTER_KEY = "sk-gw-images-up-test-key"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """`gateway up --no-kafka` without provider keys; yields its URL and start-up lines."""
    folder = tmp_path_factory.mktemp("images-up")
    config = write_config(folder / "litellm_config.yaml")
    with gateway_up(config, master_key=MASTER_KEY) as running:
        yield running.url, running.lines


def test_the_fal_emulator_is_announced(gateway: tuple[str, list[str]]) -> None:
    """Without FAL_KEY the start-up lines list the emulated Fal provider."""
    assert any(line.strip().startswith("emulated fal") for line in gateway[1])


def test_images_generate_with_two_loras_through_gateway_up(gateway: tuple[str, list[str]]) -> None:
    """images.generate with two LoRAs, n=2 and a size answers two images of that size."""
    with openai.OpenAI(base_url=f"{gateway[0]}/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        raw = sdk.images.with_raw_response.generate(
            model="image-generation",
            prompt="a denim jacket on a mannequin",
            n=2,
            size="1024x1536",
            response_format="b64_json",
            extra_body={
                "loras": [
                    {"path": "https://example.com/denim.safetensors", "scale": 0.9},
                    {"path": "https://example.com/light.safetensors", "scale": 0.5},
                ]
            },
        )
    images = raw.parse()
    assert images.data is not None and len(images.data) == 2
    picture = Image.open(io.BytesIO(base64.b64decode(images.data[1].b64_json or "")))
    assert picture.size == (1024, 1536)
    assert raw.headers["x-gateway-provider"] == "fal"
    assert float(raw.headers["x-gateway-cost-usd"]) > 0


def _png(size: tuple[int, int], mode: str = "RGB", colour: int | tuple[int, ...] = 0) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


def test_images_edit_with_a_mask_through_gateway_up(gateway: tuple[str, list[str]]) -> None:
    """images.edit with a mask answers an image of the input's size."""
    with openai.OpenAI(base_url=f"{gateway[0]}/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        edited = sdk.images.edit(
            model="image-editing",
            image=("look.png", _png((96, 128), colour=(10, 120, 200)), "image/png"),
            mask=("mask.png", _png((96, 128), "L", 255), "image/png"),
            prompt="a striped shirt",
            response_format="b64_json",
        )
    assert edited.data is not None
    picture = Image.open(io.BytesIO(base64.b64decode(edited.data[0].b64_json or "")))
    assert picture.size == (96, 128)


def test_a_training_job_runs_through_gateway_up(gateway: tuple[str, list[str]]) -> None:
    """fine_tuning.jobs create, retrieve until done, list_events and list, on the embedded Fal."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("look.png", _png((32, 32)))
    with openai.OpenAI(base_url=f"{gateway[0]}/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        upload = sdk.files.create(
            file=("looks.zip", archive.getvalue(), "application/zip"), purpose="fine-tune"
        )
        job = sdk.fine_tuning.jobs.create(
            model="lora-training", training_file=upload.id, metadata={"steps": "100"}
        )
        for _ in range(600):  # a bounded wait for the emulated run (2 s by default)
            job = sdk.fine_tuning.jobs.retrieve(job.id)
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        events = sdk.fine_tuning.jobs.list_events(job.id).data
        listed = [j.id for j in sdk.fine_tuning.jobs.list().data]
    assert job.status == "succeeded"
    assert job.fine_tuned_model
    assert events[0].message.startswith("Job succeeded")
    assert job.id in listed


def test_face_detection_through_gateway_up(gateway: tuple[str, list[str]]) -> None:
    """A face-detection chat with an image answers JSON boxes inside that image."""
    picture = base64.b64encode(_png((200, 100), colour=(200, 170, 150))).decode()
    with openai.OpenAI(base_url=f"{gateway[0]}/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        completion = sdk.chat.completions.create(
            model="face-detection",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "face"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{picture}"},
                        },
                    ],
                }
            ],
        )
    answer = json.loads(completion.choices[0].message.content or "")
    assert (answer["width"], answer["height"]) == (200, 100)
    assert all(0 <= f["box"][0] < f["box"][2] <= 200 for f in answer["faces"])
