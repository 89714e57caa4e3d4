"""Image models on a tiny generated model: bad images are refused precisely, batches are stacked
and split back per image, and the answers follow the vision tasks' published JSON."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from image_server import serving
from onnx_tiny import image_model
from PIL import Image

from plugins.fal.vision import FACES_SCHEMA, MASKS_SCHEMA
from plugins.onnx.errors import OnnxBadInput
from plugins.onnx.images import MAX_PIXELS, decode_image, fetch_image, image_fetcher
from plugins.onnx.settings import BatchSettings
from plugins.onnx.vision import ImageModel, faces_answer, masks_answer


def _png(size: tuple[int, int], mode: str = "RGB", colour: Any = 128) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


def _preprocess(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, Any]:
    small = np.asarray(image.resize((4, 4)), dtype=np.float32) / 255
    return small[None], size


def _postprocess(outputs: Sequence[np.ndarray], size: Any) -> tuple[float, Any]:
    mean, _ = outputs
    if mean.shape != (1, 1):
        raise AssertionError(f"per-image output of shape {mean.shape}")
    if float(mean[0, 0]) > 0.99:
        raise OnnxBadInput("a white image has nothing to find", param="messages")
    return float(mean[0, 0]), size


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a but not really", "not an image"),
        (_png((64, 64))[:60], "truncated or corrupt"),
    ],
)
def test_what_is_not_a_readable_image_is_a_400(data: bytes, message: str) -> None:
    """Empty, non-image and truncated data are OnnxBadInput naming the field."""
    with pytest.raises(OnnxBadInput, match=message) as refused:
        decode_image(data, param="messages")
    assert refused.value.param == "messages" and refused.value.status_code == 400


def test_an_enormous_image_is_refused_before_it_is_decoded() -> None:
    """An image beyond MAX_PIXELS is refused from its header (a decompression bomb never loads)."""
    side = int(MAX_PIXELS**0.5) + 10
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, format="PNG")
    with pytest.raises(OnnxBadInput, match="at most"):
        decode_image(out.getvalue())


def test_an_image_of_an_unusual_channel_count_is_refused() -> None:
    """A 32-bit float (single-channel 'F') TIFF is refused by its mode, naming the channels."""
    out = io.BytesIO()
    Image.new("F", (8, 8)).save(out, format="TIFF")
    with pytest.raises(OnnxBadInput, match="channels"):
        decode_image(out.getvalue())


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grey_alpha_and_palette_images_become_rgb(mode: str) -> None:
    """Greyscale, RGBA and palette images are read as RGB of the same size."""
    decoded = decode_image(_png((7, 5), mode, 100 if mode != "RGBA" else (1, 2, 3, 4)))
    assert decoded.image.mode == "RGB" and decoded.image.size == decoded.size == (7, 5)


def _jpeg(size: tuple[int, int], mode: str = "RGB") -> bytes:
    """A JPEG of a smooth gradient (what DCT scaling keeps: no detail finer than 8 px)."""
    xs, ys = np.meshgrid(np.linspace(0, 255, size[0]), np.linspace(0, 255, size[1]))
    pixels = np.stack([xs, (xs + ys) / 2, ys], axis=-1)
    out = io.BytesIO()
    picture = Image.fromarray(pixels.astype(np.uint8)).convert(mode)
    picture.save(out, format="JPEG", quality=95)
    return out.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_a_jpeg_is_decoded_at_reduced_scale_for_a_model_that_reads_few_pixels(mode: str) -> None:
    """A 2000x1500 JPEG (colour, grey or CMYK) for a 192 px model is decoded at a quarter of
    its size (both sides still >= 192), as RGB, its original size kept, and the picture is the
    same once resized."""
    data = _jpeg((2000, 1500), mode)
    reduced = decode_image(data, at_least=192)
    full = decode_image(data)
    assert reduced.size == full.size == full.image.size == (2000, 1500)
    assert reduced.image.size == (500, 375) and reduced.image.mode == "RGB"
    small = [np.asarray(d.image.resize((192, 144), Image.Resampling.BILINEAR, reducing_gap=2.0),
                        dtype=np.float32) for d in (reduced, full)]  # fmt: skip
    assert np.abs(small[0] - small[1]).mean() < 2.0  # of 255: the same picture


def test_a_small_jpeg_or_another_format_is_decoded_whole() -> None:
    """No reduction below the model's side, and none for a PNG, whatever its size."""
    small = decode_image(_jpeg((300, 200)), at_least=192)
    assert small.image.size == small.size == (300, 200)  # 200 // 192 = 1: no room to scale
    png = decode_image(_png((1000, 800)), at_least=192)
    assert png.image.size == png.size == (1000, 800)


async def test_data_urls_decode_and_bad_schemes_are_refused() -> None:
    """A base64 data URL yields its bytes; a file: URL or bad base64 is a 400 on `messages`."""
    png = _png((3, 3))
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert await fetch_image(url) == png
    for bad in ("file:///etc/passwd", "data:image/png;base64,@@@", "data:image/png,raw"):
        with pytest.raises(OnnxBadInput) as refused:
            await fetch_image(bad)
        assert refused.value.param == "messages"


async def test_an_image_url_inside_the_network_is_refused_unless_allow_listed() -> None:
    """An http URL on a loopback address is a 400 naming why, before any byte is fetched
    from it; with the address allow-listed the same URL is fetched."""
    png = _png((3, 3))
    with serving({"/photo.png": (png, "image/png")}) as server:
        with pytest.raises(OnnxBadInput, match=r"refused.*loopback") as refused:
            await fetch_image(f"{server.url}/photo.png")
        assert refused.value.param == "messages"
        assert await fetch_image(f"{server.url}/photo.png", image_fetcher(["127.0.0.1"])) == png


async def test_an_allow_listed_server_that_answers_no_image_is_a_400_naming_it() -> None:
    """A 404 or a page that is not an image is a 400 saying what the server answered."""
    with serving({"/page": (b"<html></html>", "text/html")}) as server:
        fetcher = image_fetcher(["127.0.0.1"])
        with pytest.raises(OnnxBadInput, match="404"):
            await fetch_image(f"{server.url}/missing.png", fetcher)
        with pytest.raises(OnnxBadInput, match="text/html"):
            await fetch_image(f"{server.url}/page", fetcher)


def _tiny_runner(folder: Path, *, max_batch: int, batch: int | str = "batch") -> ImageModel[Any]:
    """The tiny mean/max model built in `folder` (its batch axis fixed when `batch` is a
    number) behind an ImageModel whose batches wait for `max_batch` items."""
    image_model(folder, batch=batch)
    return ImageModel(
        folder.name,
        folder,
        preprocess=_preprocess,
        postprocess=_postprocess,
        batching=BatchSettings(max_batch=max_batch, max_wait_ms=60_000),
    )


async def test_concurrent_images_run_as_one_batch_and_get_their_own_results(
    tmp_path: Path,
) -> None:
    """Eight images submitted together are stacked into one run; each gets its own output."""
    runner = _tiny_runner(tmp_path / "tiny", max_batch=8)
    await runner.start()
    try:
        images = [Image.new("RGB", (10 + i, 10), (i * 20,) * 3) for i in range(8)]
        results = await asyncio.gather(*(runner.infer(im) for im in images))
    finally:
        await runner.stop()
    assert runner.batcher.stats.batches == 1
    for i, (mean, size) in enumerate(results):
        assert mean == pytest.approx(i * 20 / 255, abs=1e-5)
        assert size == (10 + i, 10)


async def test_an_image_the_postprocess_refuses_fails_alone(tmp_path: Path) -> None:
    """A white image refused by postprocess fails; the others of its batch are answered."""
    runner = _tiny_runner(tmp_path / "tiny", max_batch=3)
    await runner.start()
    try:
        colours = [(10, 10, 10), (255, 255, 255), (30, 30, 30)]
        results = await asyncio.gather(
            *(runner.infer(Image.new("RGB", (4, 4), c)) for c in colours), return_exceptions=True
        )
    finally:
        await runner.stop()
    assert isinstance(results[1], OnnxBadInput)
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)


async def test_a_model_with_a_fixed_batch_of_one_runs_image_by_image(tmp_path: Path) -> None:
    """A model exported with batch 1 still serves a batch of three, one run per image."""
    runner = _tiny_runner(tmp_path / "fixed", max_batch=3, batch=1)
    await runner.start()
    try:
        results = await asyncio.gather(
            *(runner.infer(Image.new("RGB", (4, 4), (c, c, c))) for c in (0, 51, 102))
        )
    finally:
        await runner.stop()
    assert [round(m, 3) for m, _ in results] == [0.0, 0.2, 0.4]


@dataclass
class _Face:
    box: tuple[float, float, float, float]
    score: float


def test_faces_answer_matches_the_schema_and_clips_to_the_image() -> None:
    """Face boxes become integer pixel boxes inside the image; empty ones are dropped."""
    faces = [_Face((-5, 10.4, 50.6, 300), 0.91), _Face((20, 20, 20, 40), 0.8)]
    answer = faces_answer(faces, 100, 200)
    jsonschema.validate(answer, FACES_SCHEMA)
    assert answer["faces"] == [{"box": [0, 10, 51, 200], "score": 0.91}]


@dataclass
class _Mask:
    mask: np.ndarray
    score: float | None = None

    def to_png(self) -> bytes:
        out = io.BytesIO()
        Image.fromarray(self.mask.astype(np.uint8) * 255).save(out, format="PNG")
        return out.getvalue()


def test_masks_answer_matches_the_schema_with_a_png_of_the_image_size() -> None:
    """A person mask becomes one MASKS_SCHEMA entry: a PNG data URL of the input's size and
    the foreground's bounding box; an empty mask becomes no entry."""
    pixels = np.zeros((30, 40), dtype=bool)
    pixels[5:20, 10:25] = True
    answer = masks_answer(_Mask(pixels), 40, 30)
    jsonschema.validate(answer, MASKS_SCHEMA)
    (entry,) = answer["masks"]
    assert entry["box"] == [10, 5, 25, 20]
    png = base64.b64decode(entry["url"].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (40, 30)
    assert masks_answer(_Mask(np.zeros((30, 40), bool)), 40, 30)["masks"] == []
