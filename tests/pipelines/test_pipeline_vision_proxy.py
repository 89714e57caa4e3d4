"""The vision handlers through the real proxy and the Fal emulator: the emulator's boxes and
masks (Moondream3, SAM-3) come back in the results, the mask stored as the input's PNG."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from vision_support import (
    Progress,
    emulated_boxes,
    emulated_mask,
    encoded,
    master_key,
    resources,
)

from artifacts import LocalArtifactStore
from emulators.testing import FalHandle
from pipelines._refs import MediaRef
from pipelines._vision_schemas import FacesRequested, SegmentationRequested
from pipelines.vision import FaceDetection, Segmenter, VisionOptions


@pytest.fixture
async def handlers(
    vision_proxy: tuple[Any, Path], tmp_path: Path, fal: FalHandle
) -> AsyncIterator[tuple[FaceDetection, Segmenter, Path]]:
    """Both handlers pointed at the proxy, reading images from `tmp_path`; the Fal emulator's
    mask links (on 127.0.0.1) are allowed to the fetcher."""
    running, config = vision_proxy
    options = VisionOptions(
        config=str(config), allowed_roots=[str(tmp_path)], fetch_allow=["127.0.0.1"]
    )
    faces = FaceDetection(options, resources(running.url, master_key()))
    masks = Segmenter(options, resources(running.url, master_key()))
    for handler in (faces, masks):
        await handler.start()
    yield faces, masks, tmp_path
    for handler in (faces, masks):
        await handler.stop()


def _photo(seed: int, size: tuple[int, int] = (200, 150)) -> Image.Image:
    noise = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(noise)


@pytest.mark.parametrize(("kind", "suffix"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
async def test_the_emulators_face_boxes_come_back_as_pixel_boxes(
    handlers: tuple[FaceDetection, Segmenter, Path], kind: str, suffix: str
) -> None:
    """A PNG, JPEG or WebP gets exactly the boxes Moondream3's emulator computes for those
    bytes, as [x, y, w, h], and the proxy's accounting for them."""
    faces, _, folder = handlers
    data = encoded(_photo(7), kind)
    path = folder / f"photo.{suffix}"
    path.write_bytes(data)
    event = FacesRequested(event_id=f"ev-{suffix}", subject="p", image=MediaRef(path=str(path)))
    progress = Progress()
    result = await faces.handle(event, progress.context())
    assert [f.box for f in result.faces] == emulated_boxes(data)
    assert all(f.score is None and f.landmarks is None for f in result.faces)
    assert (result.width, result.height) == (200, 150)
    assert result.served.provider == "fal" and result.served.fallback is False
    assert "moondream3" in result.served.model
    assert result.served.provider_attempts == 1 and result.served.images == 1
    assert result.served.proxy_latency_ms is not None
    assert progress.stages == ["resolving", "detecting"]


async def test_the_emulators_mask_is_stored_as_a_single_channel_png_of_the_input(
    handlers: tuple[FaceDetection, Segmenter, Path], vision_proxy: tuple[Any, Path]
) -> None:
    """SAM-3's emulated mask is stored as an "L" PNG of the input's size, pixel for pixel, and
    the fraction and box are those of its pixels."""
    _, masks, folder = handlers
    data = encoded(_photo(11, (160, 120)))
    path = folder / "photo.png"
    path.write_bytes(data)
    event = SegmentationRequested(event_id="ev-mask", subject="p", image=MediaRef(path=str(path)))
    result = await masks.handle(event, Progress().context())
    store = LocalArtifactStore(vision_proxy[1].parent / "store")
    stored = Image.open(io.BytesIO(bytes(await store.get(result.mask.artifact_id))))
    assert (stored.format, stored.mode, stored.size) == ("PNG", "L", (160, 120))
    pixels = np.asarray(stored)
    expected = np.asarray(emulated_mask(data))
    assert np.array_equal(pixels, expected)
    assert result.foreground_fraction == pytest.approx(float((pixels == 255).mean()), abs=1e-6)
    assert 0 < result.foreground_fraction < 1
    [region] = result.boxes
    ys, xs = np.nonzero(pixels)
    x, y, w, h = region.box
    # SAM-3's box is the ellipse's bounding box; the drawn ellipse may stop a pixel short.
    assert abs(x - xs.min()) <= 1 and abs(y - ys.min()) <= 1
    assert abs(x + w - (xs.max() + 1)) <= 1 and abs(y + h - (ys.max() + 1)) <= 1
    assert region.score == 0.9
    assert result.served.provider == "fal" and "sam-3" in result.served.model
    assert result.served.cost_usd == pytest.approx(0.005)  # gateway_settings.prices


async def test_a_mask_link_the_fetch_rules_refuse_fails_the_request(
    vision_proxy: tuple[Any, Path], tmp_path: Path, fal: FalHandle
) -> None:
    """Without 127.0.0.1 allowed, the emulator's mask link is refused: AnswerInvalid."""
    running, config = vision_proxy
    masks = Segmenter(
        VisionOptions(config=str(config), allowed_roots=[str(tmp_path)]),
        resources(running.url, master_key()),
    )
    await masks.start()
    path = tmp_path / "photo.png"
    path.write_bytes(encoded(_photo(3, (64, 64))))
    event = SegmentationRequested(event_id="ev-ref", subject="p", image=MediaRef(path=str(path)))
    try:
        with pytest.raises(Exception, match="mask URL was refused") as failed:
            await masks.handle(event, Progress().context())
    finally:
        await masks.stop()
    assert type(failed.value).__name__ == "AnswerInvalid"
    assert failed.value.retriable is False  # type: ignore[attr-defined]
