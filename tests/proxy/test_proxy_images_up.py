"""`gateway up` on the embedded default serves image generation: the Fal emulator is started
for the missing FAL_KEY and the official openai SDK gets images with two LoRAs."""

from __future__ import annotations

import base64
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image
from provider_setup import write_config

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = Path(sys.executable).parent / "gateway"
MASTER_KEY = "sk-gw-images-up-test-key"
# Anything that would make `gateway up` use a real provider or a shared service.
_CLEARED = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "FAL_KEY",
    "ANTHROPIC_API_BASE",
    "OPENAI_API_BASE",
    "GEMINI_API_BASE",
    "FAL_API_BASE",
    "KAFKA_BOOTSTRAP_SERVERS",
    "CONFIG_FILE_PATH",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """`gateway up --no-kafka` without provider keys; yields its URL and start-up lines."""
    folder = tmp_path_factory.mktemp("images-up")
    config = write_config(folder / "litellm_config.yaml")
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env |= {"LITELLM_MASTER_KEY": MASTER_KEY, "PYTHONPATH": str(ROOT)}
    port = _free_port()
    with (folder / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [str(GATEWAY), "up", "--no-kafka", "--port", str(port), "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        printed: list[str] = []
        try:
            while (line := lines.get(timeout=90)) is not None:
                printed.append(line)
                if line.startswith("gateway: ready"):
                    break
            else:
                raise RuntimeError(f"gateway exited before ready: {printed}")
            yield f"http://127.0.0.1:{port}", printed
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


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
