"""The runtime on the real built models, in-process (as a consumer's handler uses them): text
embeddings that rank meaning, image embeddings that spot copies, shot boundaries of a real
video, and faces on a real photo."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
from onnx_vision_data import GROUP_FACES, group_photo, portrait
from PIL import Image

from plugins.onnx import image_embeddings
from plugins.onnx.errors import OnnxBadInput
from plugins.onnx.provider import OnnxModels
from plugins.onnx.settings import OnnxSettings

DATA = Path(__file__).resolve().parents[1] / "data" / "onnx"


@pytest.fixture
async def models(onnx_models: Path) -> AsyncIterator[OnnxModels]:
    running = OnnxModels(OnnxSettings(), onnx_models)
    yield running
    await running.stop()


@pytest.mark.parametrize("model", ["minilm-l6-v2", "minilm-l6-v2-int8"])
async def test_related_fashion_phrases_are_closer_than_unrelated_ones(
    models: OnnxModels, model: str
) -> None:
    """MiniLM (fp32 and int8) puts "red silk dress" nearer "crimson satin gown" than "engine
    oil filter"."""
    embedder = await models.embedder(model)
    dress, gown, oil = (
        await embedder.embed(["red silk dress", "crimson satin gown", "engine oil filter"])
    ).vectors
    assert float(dress @ gown) > float(dress @ oil) + 0.2


async def test_int8_vectors_stay_close_to_the_fp32_ones(models: OnnxModels) -> None:
    """Each int8 MiniLM vector points where the fp32 one does (cosine above 0.97)."""
    texts = ["navy wool coat with a belt", "ivory lace wedding gown", "black leather boots"]
    fp32 = (await (await models.embedder("minilm-l6-v2")).embed(texts)).vectors
    int8 = (await (await models.embedder("minilm-l6-v2-int8")).embed(texts)).vectors
    assert np.all(np.sum(fp32 * int8, axis=1) > 0.97)
    assert not np.allclose(fp32, int8)  # it is another model, not the same file twice


async def test_a_recompressed_smaller_copy_is_a_near_duplicate_and_another_photo_is_not(
    models: OnnxModels,
) -> None:
    """MobileNetV2 features of a half-size JPEG copy match the photo; another photo does not."""
    embedder = await models.image_embedder("mobilenetv2")
    photo = group_photo().convert("RGB")
    out = io.BytesIO()
    photo.resize((640, 443)).save(out, format="JPEG", quality=70)
    copy = Image.open(io.BytesIO(out.getvalue())).convert("RGB")
    original, duplicate, other = [
        await embedder.infer(image) for image in (photo, copy, portrait().convert("RGB"))
    ]
    assert original.shape == (1280,)
    assert image_embeddings.is_near_duplicate(original, duplicate)
    assert not image_embeddings.is_near_duplicate(original, other)


async def test_the_shots_of_the_packages_test_video_are_found(
    models: OnnxModels, transnetv2_test_video: Path
) -> None:
    """TransNetV2 finds the 17 shots the original model finds in the first 750 frames."""
    recorded = json.loads((DATA / "transnetv2_test_video_750.json").read_text())
    frames: list[np.ndarray] = []
    with av.open(str(transnetv2_test_video)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == recorded["frames"]:
                break
    detector = await models.shot_detector("transnetv2")
    found = await detector.scenes(frames, threshold=recorded["threshold"])
    assert [[s.start, s.end] for s in found] == recorded["scenes"]


async def test_a_frame_of_the_wrong_shape_is_refused(models: OnnxModels) -> None:
    """A greyscale frame among RGB ones is OnnxBadInput naming `frames`."""
    detector = await models.shot_detector("transnetv2")
    with pytest.raises(OnnxBadInput) as refused:
        await detector.scenes([np.zeros((90, 160, 3), np.uint8), np.zeros((90, 160), np.uint8)])
    assert refused.value.param == "frames"


async def test_the_faces_on_a_group_photo_are_found_concurrently(models: OnnxModels) -> None:
    """Eight concurrent detections of the group photo each find its six faces."""
    detector = await models.image_model("blazeface-full-range", "face-detection")
    photo = group_photo().convert("RGB")
    results = await asyncio.gather(*(detector.infer(photo) for _ in range(8)))
    assert [len(faces) for faces in results] == [GROUP_FACES] * 8
    assert detector.batcher.stats.largest > 1
