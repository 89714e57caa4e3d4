"""The vision handlers in-process: faces and person masks from the built ONNX models on real
photos, and every bad input failing before any model or provider is asked, named."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from vision_support import Progress, encoded, resources, vision_config

from artifacts import LocalArtifactStore
from core.config import ConfigError
from pipelines._errors import (
    ImageTooLarge,
    ImageUndecodable,
    InputNotFound,
    InputRefused,
    PipelineError,
    PromptUnsupported,
)
from pipelines._refs import MediaRef
from pipelines._vision_schemas import FacesRequested, SegmentationRequested
from pipelines.vision import FaceDetection, LocalModel, Segmenter, VisionOptions
from tests.plugins.onnx_vision_data import GROUP_FACES, group_photo, portrait

Make = Callable[..., Any]


@pytest.fixture
def config(tmp_path: Path, onnx_models: Path) -> Path:
    return vision_config(tmp_path, onnx_models)


@pytest.fixture
async def make(config: Path, tmp_path: Path) -> AsyncIterator[Make]:
    """Builds and starts a handler over `tmp_path/images`, stopped after the test."""
    started: list[Any] = []

    async def build(cls: type[Any], **options: Any) -> Any:
        handler = cls(
            VisionOptions(config=str(config), allowed_roots=[str(tmp_path / "images")], **options),
            resources(),
        )
        await handler.start()
        started.append(handler)
        return handler

    (tmp_path / "images").mkdir()
    yield build
    for handler in started:
        await handler.stop()


def _faces(path: Path, **fields: Any) -> FacesRequested:
    return FacesRequested(
        event_id="ev-faces", subject="photo-1", image=MediaRef(path=str(path)), **fields
    )


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / "images" / name
    path.write_bytes(data)
    return path


async def test_the_six_faces_of_the_group_photo_are_found_in_process(
    make: Make, tmp_path: Path
) -> None:
    """BlazeFace in-process finds the group photo's six faces, with landmarks, served by onnx."""
    handler = await make(FaceDetection, local=LocalModel(model="blazeface-full-range"))
    photo = group_photo().convert("RGB")
    path = _write(tmp_path, "group.jpg", encoded(photo, "JPEG"))
    progress = Progress()
    faces = await handler.handle(_faces(path), progress.context())
    assert len(faces.faces) == GROUP_FACES
    assert (faces.width, faces.height) == photo.size
    # The JPEG is decoded at a quarter of its size for the 192 px model; boxes in those
    # pixels would all lie in the photo's top-left quarter.
    assert max(face.box[0] + face.box[2] for face in faces.faces) > photo.width / 2
    for face in faces.faces:
        x, y, w, h = face.box
        assert w > 0 and h > 0 and x + w <= photo.width and y + h <= photo.height
        assert face.score is not None and face.score >= 0.5
        assert [mark.name for mark in face.landmarks or []][:3] == [
            "right_eye",
            "left_eye",
            "nose_tip",
        ]
    assert faces.served.provider == "onnx" and faces.served.model == "blazeface-full-range"
    assert faces.served.cost_usd == 0.0
    assert progress.stages == ["resolving", "detecting"]
    assert handler.provider == "onnx"


async def test_concurrent_requests_share_the_local_models_batches(
    make: Make, tmp_path: Path
) -> None:
    """Eight concurrent requests each get the six faces, and the model ran them in batches."""
    handler = await make(FaceDetection, local=LocalModel(model="blazeface-full-range"))
    path = _write(tmp_path, "group.png", encoded(group_photo().convert("RGB")))
    results = await asyncio.gather(
        *(handler.handle(_faces(path), Progress().context()) for _ in range(8))
    )
    assert [len(r.faces) for r in results] == [GROUP_FACES] * 8
    assert len({tuple(map(tuple, (f.box for f in r.faces))) for r in results}) == 1
    assert handler.local_model is not None and handler.local_model.batcher.stats.largest > 1


async def test_max_faces_keeps_the_best_scored_ones(make: Make, tmp_path: Path) -> None:
    """max_faces=2 keeps the two highest scores of the six, best first."""
    handler = await make(FaceDetection, local=LocalModel(model="blazeface-full-range"))
    path = _write(tmp_path, "group.png", encoded(group_photo().convert("RGB")))
    every = await handler.handle(_faces(path), Progress().context())
    two = await handler.handle(_faces(path, max_faces=2), Progress().context())
    scores = sorted((f.score or 0.0 for f in every.faces), reverse=True)
    assert [f.score for f in two.faces] == scores[:2]
    assert scores[0] < 1.0 and scores[-1] >= 0.5
    strict = await handler.handle(_faces(path, min_score=scores[1]), Progress().context())
    assert len(strict.faces) == 2


async def test_the_portraits_person_mask_is_stored_as_a_single_channel_png(
    make: Make, tmp_path: Path
) -> None:
    """Selfie segmentation in-process stores an "L" PNG of the input's size; the fraction and
    the box are those of its pixels."""
    handler = await make(Segmenter, local=LocalModel(model="selfie-segmentation"))
    photo = portrait().convert("RGB")
    path = _write(tmp_path, "portrait.png", encoded(photo))
    event = SegmentationRequested(
        event_id="ev-mask", subject="photo-2", image=MediaRef(path=str(path))
    )
    progress = Progress()
    result = await handler.handle(event, progress.context())
    stored = await LocalArtifactStore(tmp_path / "store").get(result.mask.artifact_id)
    mask = Image.open(io.BytesIO(bytes(stored)))
    assert (mask.format, mask.mode, mask.size) == ("PNG", "L", photo.size)
    pixels = np.asarray(mask)
    assert set(np.unique(pixels)) <= {0, 255}
    assert result.foreground_fraction == pytest.approx(float((pixels == 255).mean()), abs=1e-6)
    assert 0.1 < result.foreground_fraction < 0.9  # the astronaut fills part of the frame
    [region] = result.boxes
    ys, xs = np.nonzero(pixels)
    assert region.box == [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]
    assert result.mask.content_type == "image/png" and result.mask.size == len(stored)
    assert result.served.provider == "onnx" and result.served.cost_usd == 0.0
    assert progress.stages == ["resolving", "segmenting", "storing"]


async def test_the_local_segmenter_refuses_a_prompt_other_than_people(
    make: Make, tmp_path: Path
) -> None:
    """The person segmenter asked for a "shirt" fails with PromptUnsupported, not retriable."""
    handler = await make(Segmenter, local=LocalModel(model="selfie-segmentation"))
    path = _write(tmp_path, "p.png", encoded(Image.new("RGB", (32, 32))))
    event = SegmentationRequested(
        event_id="ev-shirt", subject="s", image=MediaRef(path=str(path)), prompt="shirt"
    )
    with pytest.raises(PromptUnsupported) as refused:
        await handler.handle(event, Progress().context())
    assert refused.value.retriable is False


async def test_a_local_model_that_was_not_built_stops_the_start(
    tmp_path: Path, config: Path
) -> None:
    """A `local:` model absent from the models directory is a ConfigError naming the build."""
    handler = FaceDetection(
        VisionOptions(config=str(config), local=LocalModel(model="no-such-model")), resources()
    )
    with pytest.raises(ConfigError, match="gateway models build"):
        await handler.start()
    await handler.stop()


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and header claiming `width` x `height`, with no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


BAD_FILES = [
    pytest.param(b"\x00 not an image " * 40, ImageUndecodable, "not a PNG", id="junk"),
    pytest.param(b"", InputRefused, "empty", id="zero-bytes"),
    pytest.param(_png_header(0, 10), ImageUndecodable, "not a PNG", id="zero-width"),
    pytest.param(_png_header(100_000, 100_000), ImageTooLarge, "10000000000", id="huge"),
    pytest.param(
        encoded(Image.new("RGB", (64, 64), "red"))[:80], ImageUndecodable, "truncated", id="cut"
    ),
    pytest.param(encoded(Image.new("RGB", (8, 8)), "GIF"), InputRefused, "GIF", id="gif"),
]


@pytest.mark.parametrize(("data", "error", "says"), BAD_FILES)
@pytest.mark.parametrize("cls", [FaceDetection, Segmenter])
async def test_a_bad_image_file_fails_naming_the_cause(  # noqa: PLR0917 - fixtures and params
    make: Make, tmp_path: Path, cls: type[Any], data: bytes, error: type, says: str
) -> None:
    """Undecodable, empty, zero-sized, enormous, truncated and GIF inputs each fail with
    their own non-retriable error before the proxy (which answers nothing here) is asked."""
    handler = await make(cls)
    # Named .png: the GIF is refused for what it is, not for its name.
    path = _write(tmp_path, "input.png", data)
    event = (
        _faces(path)
        if cls is FaceDetection
        else SegmentationRequested(event_id="e", subject="s", image=MediaRef(path=str(path)))
    )
    with pytest.raises(error, match=says) as failed:
        await handler.handle(event, Progress().context())
    assert failed.value.retriable is False


BAD_REFS = [
    pytest.param(MediaRef(artifact_id="ab" * 32), InputNotFound, "no artifact", id="missing"),
    pytest.param(MediaRef(artifact_id="../x"), InputRefused, "malformed", id="bad-id"),
    pytest.param(MediaRef(url="http://169.254.169.254/a.png"), InputRefused, "refused", id="url"),
    pytest.param(MediaRef(path="/etc/hostname"), InputRefused, "outside", id="outside"),
]


@pytest.mark.parametrize(("ref", "error", "says"), BAD_REFS)
async def test_a_bad_reference_fails_naming_the_cause(
    make: Make, ref: MediaRef, error: type[PipelineError], says: str
) -> None:
    """A missing or malformed artifact, a private-address URL and a path outside the roots
    each fail with a non-retriable error saying so."""
    handler = await make(FaceDetection)
    event = FacesRequested(event_id="e", subject="s", image=ref)
    with pytest.raises(error, match=says) as failed:
        await handler.handle(event, Progress().context())
    assert failed.value.retriable is False
