"""Every media kind through the whole product as a user runs it: `gateway up` (emulated
providers, a broker, the consumers and the proxy in one stack) and `gateway send KIND --input
FILE --wait`, then the printed signed link fetched with a plain HTTP client. Shows the default
configuration serving each kind, the links `gateway up` signs with the key it generates, and
the emulators' own output links being fetched under the stack's trust."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from gateway_support import base_env, send_to
from PIL import Image
from provider_setup import write_config
from test_gateway_up import _KAFKA_LINE, Gateway

from services import RedisServer

_FAST_POLLS = {"poll_interval_s": 0.3}


def _config(folder: Path) -> Path:
    """The repository config with the artifacts in `folder` and quick job polling."""

    def edit(data: dict[str, Any]) -> None:
        data["gateway_settings"]["artifacts"]["root"] = str(folder / "artifacts")
        for entry in data["gateway_settings"]["kafka"]["handlers"]:
            if entry["factory"].split(":")[0] in ("pipelines.training", "pipelines.videos"):
                entry["options"] = {**entry.get("options", {}), **_FAST_POLLS}

    return write_config(folder / "litellm_config.yaml", edit)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[Gateway, Path, Path]]:
    """`gateway up --kafka mock` on the repository's handlers, its config and a folder of
    input photos."""
    folder = tmp_path_factory.mktemp("send-media")
    config = _config(folder)
    env = {k: v for k, v in base_env(REDIS_URL=redis_server.url).items()}
    # No key in the environment: `gateway up` must generate the one its links are signed with.
    env.pop("GATEWAY_ARTIFACT_SIGNING_KEY", None)
    gateway = Gateway(["--kafka", "mock", "--config", str(config)], env, folder / "stderr.log")
    photos = folder / "photos"
    photos.mkdir()
    for name, colour in (("person", (200, 170, 150)), ("garment", (30, 60, 160))):
        Image.new("RGB", (384, 512), colour).save(photos / f"{name}.png")
    yield gateway, config, photos
    if gateway.process.poll() is None:
        gateway.terminate()


def _send(stack: tuple[Gateway, Path, Path], kind: str, *args: str) -> tuple[dict[str, Any], str]:
    gateway, config, _ = stack
    servers = gateway.matched(_KAFKA_LINE).group(2)
    done = send_to(
        servers, kind, *args, "--config", str(config), "--wait", "--timeout", "90", timeout_s=150
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    start = done.stdout.index("\n{") + 1
    result, _ = json.JSONDecoder().raw_decode(done.stdout[start:])
    return dict(result), done.stdout


def _fetched(out: str) -> list[httpx.Response]:
    """Each artifact link `send` printed, fetched without any key."""
    links = [line.split()[-1] for line in out.splitlines() if line.startswith("artifact ")]
    assert links, out
    return [httpx.get(link, timeout=30) for link in links]


def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


@pytest.mark.parametrize(
    ("kind", "args"),
    [
        ("image.generation.requested", ["--set", "prompt=a red silk dress on a hanger"]),
        ("image.edit.requested", ["--input", "image={person}", "--set", "prompt=make it blue"]),
        (
            "tryon.requested",
            ["--input", "person={person}", "--input", "garments={garment}"],
        ),
        ("segmentation.requested", ["--input", "image={person}"]),
    ],
)
def test_each_image_kind_is_sent_and_its_images_fetched_by_link(
    stack: tuple[Gateway, Path, Path], kind: str, args: list[str]
) -> None:
    """The kind's result names the provider that served it, and every artifact it points at
    is served by the proxy's signed link as a decodable image."""
    photos = stack[2]
    filled = [a.format(person=photos / "person.png", garment=photos / "garment.png") for a in args]
    result, out = _send(stack, kind, *filled)
    assert result["type"] == kind.replace(".requested", ".succeeded")
    assert result["served"]["provider"] in ("fal", "vertex")
    for response in _fetched(out):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/")
        width, height = _image_size(response.content)
        assert width > 0 and height > 0


def test_faces_are_sent_and_answered(stack: tuple[Gateway, Path, Path]) -> None:
    """Face detection through the default config answers boxes inside the sent image."""
    result, _ = _send(stack, "faces.detection.requested", "--input", f"image={stack[2]}/person.png")
    assert result["type"] == "faces.detection.succeeded"
    assert (result["width"], result["height"]) == (384, 512)
    for face in result["faces"]:
        x, y, w, h = face["box"]
        assert x >= 0 and y >= 0 and x + w <= 384 and y + h <= 512


def test_a_video_is_generated_from_a_still_with_progress(
    stack: tuple[Gateway, Path, Path],
) -> None:
    """Video from a still prints progress, then its clip is served by link and decodes."""
    result, out = _send(
        stack,
        "video.generation.requested",
        "--input", f"image={stack[2]}/person.png",
        "--set", "prompt=the model turns around",
    )  # fmt: skip
    assert any(line.startswith("progress") for line in out.splitlines()), out
    assert result["type"] == "video.generation.succeeded"
    (response,) = _fetched(out)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content)) as container:
        assert container.streams.video[0].width == result["width"]


def test_a_lora_is_trained_with_progress(stack: tuple[Gateway, Path, Path]) -> None:
    """LoRA training prints progress while it runs and ends with a LoRA reference."""
    photos = stack[2]
    result, out = _send(
        stack,
        "lora.training.requested",
        "--input", f"images={photos}/person.png",
        "--input", f"images={photos}/garment.png",
        "--set", "trigger_word=sks",
        "--set", "steps=10",
    )  # fmt: skip
    assert any(line.startswith("progress") for line in out.splitlines()), out
    assert result["type"] == "lora.training.succeeded"
    assert result["lora"] and result["served"]["provider"] == "fal"
