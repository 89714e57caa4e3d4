"""Near-duplicate detection with MobileNetV2 features on real photos and video frames."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import pytest
from onnx_vision_data import group_photo, portrait
from PIL import Image

from plugins.onnx import image_embeddings
from plugins.onnx.errors import OnnxBadInput

Embed = Callable[[Image.Image], np.ndarray]
# Keyframes of four different shots of the test video (see the recorded scenes).
SHOTS = (30, 123, 514, 700)


@pytest.fixture(scope="module")
def embed(onnx_models: Path) -> Embed:
    """A PIL image -> its L2-normalised embedding, through the built ONNX model."""
    session = ort.InferenceSession(
        str(onnx_models / "mobilenetv2" / "model.onnx"), providers=["CPUExecutionProvider"]
    )

    def run(image: Image.Image) -> np.ndarray:
        (features,) = session.run(None, {"pixel_values": image_embeddings.preprocess(image)})
        return image_embeddings.embedding(features[0])

    return run


def _copy(image: Image.Image, scale: float) -> Image.Image:
    """The image resized by `scale` and recompressed as JPEG quality 60."""
    size = (round(image.width * scale), round(image.height * scale))
    small = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=60)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _frames(video: Path, indices: tuple[int, ...]) -> list[Image.Image]:
    picked: list[Image.Image] = []
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in indices:
                picked.append(frame.to_image())
            if len(picked) == len(indices):
                break
    return picked


def test_a_photo_and_its_resized_recompressed_copy_are_near_duplicates(embed: Embed) -> None:
    """Half-size JPEG copies of two real photos are recognised as the same pictures."""
    for photo in (portrait(), group_photo()):
        assert image_embeddings.is_near_duplicate(embed(photo), embed(_copy(photo, 0.5)))


def test_two_different_photos_are_not_near_duplicates(embed: Embed) -> None:
    """A portrait and a group photo are told apart."""
    assert not image_embeddings.is_near_duplicate(embed(portrait()), embed(group_photo()))


def test_video_frames_of_different_shots_are_not_near_duplicates(
    embed: Embed, transnetv2_test_video: Path
) -> None:
    """Frames of four different shots are pairwise distinct, yet each matches its own copy."""
    frames = _frames(transnetv2_test_video, SHOTS)
    vectors = [embed(frame) for frame in frames]
    for i, vector in enumerate(vectors):
        assert image_embeddings.is_near_duplicate(vector, embed(_copy(frames[i], 0.75)))
        for other in vectors[i + 1 :]:
            assert not image_embeddings.is_near_duplicate(vector, other)


def test_preprocess_normalises_with_imagenet_statistics() -> None:
    """A uniform grey image becomes (0.5 - mean) / std per channel, at 224x224 NCHW."""
    pixels = image_embeddings.preprocess(Image.new("RGB", (640, 480), (128, 128, 128)))
    assert pixels.shape == (1, 3, 224, 224) and pixels.dtype == np.float32
    expected = (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(pixels[0, :, 100, 100], expected, atol=1e-5)


def test_greyscale_and_transparent_images_are_converted_to_rgb() -> None:
    """L and RGBA images give the same three-channel tensor as RGB ones."""
    for mode in ("L", "RGBA", "P"):
        assert image_embeddings.preprocess(Image.new(mode, (30, 20))).shape == (1, 3, 224, 224)


def test_a_zero_sized_image_is_refused() -> None:
    """An image with no pixels is a bad input naming the image."""
    with pytest.raises(OnnxBadInput, match="0x5") as caught:
        image_embeddings.preprocess(Image.new("RGB", (0, 5)))
    assert caught.value.param == "image"


def test_embedding_normalises_rows_and_cosine_ignores_scale() -> None:
    """Embeddings have unit length, and scaling a vector leaves its similarity at 1."""
    features = np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float32)
    assert np.allclose(np.linalg.norm(image_embeddings.embedding(features), axis=1), 1.0)
    assert image_embeddings.cosine_similarity(features[0], 10 * features[0]) == pytest.approx(1.0)
