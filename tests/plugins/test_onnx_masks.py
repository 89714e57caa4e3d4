"""Selfie segmentation's pre/post-processing masks the person of a real portrait."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from onnx_vision_data import portrait
from PIL import Image

from plugins.onnx import faces, masks
from plugins.onnx.errors import OnnxBadInput, OnnxInferenceError
from plugins.onnx.export.blazeface import SPEC as BLAZEFACE
from plugins.onnx.export.selfie import SPEC as SELFIE
from plugins.onnx.images import decode_image

Segment = Callable[..., masks.Mask]  # (image, original size or None)


def _session(models: Path, name: str) -> onnxruntime.InferenceSession:
    path = models / name / "model.onnx"
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def segment(onnx_models: Path) -> Segment:
    session = _session(onnx_models, SELFIE.name)

    def run(image: Image.Image, original: tuple[int, int] | None = None) -> masks.Mask:
        tensor, size = masks.preprocess(image, original)
        return masks.postprocess(session.run(None, {"image": tensor}), size)

    return run


@pytest.fixture(scope="session")
def portrait_mask(segment: Segment) -> masks.Mask:
    return segment(portrait())


def test_portrait_mask_has_a_sensible_foreground_fraction(portrait_mask: masks.Mask) -> None:
    """The astronaut fills a good part of her portrait, not all of it."""
    assert 0.15 <= portrait_mask.foreground_fraction <= 0.85
    assert portrait_mask.mask.shape == (512, 512)
    assert portrait_mask.score is not None and portrait_mask.score > 0.8


def test_portrait_mask_covers_the_face_and_spares_the_background(
    portrait_mask: masks.Mask, onnx_models: Path
) -> None:
    """The face found by the detector is foreground; beside the head, above the shoulders, not."""
    session = _session(onnx_models, BLAZEFACE.name)
    tensor, letterbox = faces.preprocess(portrait())
    (face,) = faces.postprocess(session.run(None, {"image": tensor}), letterbox)
    x0, y0, x1, y1 = face.box
    width = x1 - x0
    pixels = portrait_mask.mask
    assert pixels[y0:y1, x0:x1].mean() > 0.85
    assert pixels[:y1, : max(0, x0 - width // 2)].mean() < 0.05
    assert pixels[:y1, x1 + width // 2 :].mean() < 0.05


def test_mask_png_is_the_mask_at_the_image_size(portrait_mask: masks.Mask) -> None:
    """to_png() decodes to a greyscale image equal to the mask (255 = person)."""
    decoded = np.asarray(Image.open(io.BytesIO(portrait_mask.to_png())))
    assert decoded.shape == portrait_mask.mask.shape
    np.testing.assert_array_equal(decoded == 255, portrait_mask.mask)


def test_a_jpeg_decoded_at_reduced_scale_gives_the_same_mask_at_its_own_size(
    segment: Segment, portrait_mask: masks.Mask
) -> None:
    """The portrait as a 1024x1024 JPEG, decoded for the 256 px model (a quarter of its size),
    is masked at 1024x1024 where the whole portrait's mask, brought to that size, is."""
    out = io.BytesIO()
    portrait().convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS).save(
        out, format="JPEG", quality=95
    )
    decoded = decode_image(out.getvalue(), at_least=masks.INPUT_SIZE)
    assert decoded.size == (1024, 1024) and decoded.image.size == (256, 256)
    reduced = segment(decoded.image, decoded.size)
    assert reduced.mask.shape == (1024, 1024)
    whole = np.asarray(Image.fromarray(portrait_mask.mask).resize((1024, 1024)), dtype=bool)
    iou = (reduced.mask & whole).sum() / (reduced.mask | whole).sum()
    assert iou > 0.95


def test_an_empty_scene_has_little_foreground(segment: Segment) -> None:
    """A plain grey image is almost all background."""
    assert segment(Image.new("RGB", (300, 200), (128, 128, 128))).foreground_fraction < 0.05


def _ramp() -> np.ndarray:
    """Probabilities rising from 0 at the left to 1 at the right, [1, 256, 256, 1]."""
    return np.tile(np.linspace(0.0, 1.0, 256, dtype=np.float32), (256, 1))[None, :, :, None]


def test_threshold_decides_which_pixels_are_foreground() -> None:
    """A higher threshold keeps fewer pixels of the same probabilities."""
    half = masks.postprocess([_ramp()], masks.Size(256, 256), threshold=0.5)
    high = masks.postprocess([_ramp()], masks.Size(256, 256), threshold=0.8)
    assert half.foreground_fraction == pytest.approx(0.5, abs=0.01)
    assert high.foreground_fraction == pytest.approx(0.2, abs=0.01)
    assert high.score is not None and high.score > 0.8


def test_mask_is_resized_to_the_original_size() -> None:
    """The 256x256 probabilities come back at the image's width and height."""
    mask = masks.postprocess(_ramp(), masks.Size(640, 100))
    assert mask.mask.shape == (100, 640)
    assert mask.foreground_fraction == pytest.approx(0.5, abs=0.01)


def test_no_foreground_gives_no_score() -> None:
    """An all-background map has fraction 0 and score None."""
    mask = masks.postprocess([np.zeros((1, 256, 256, 1), np.float32)], masks.Size(10, 10))
    assert mask.foreground_fraction == 0.0
    assert mask.score is None


@pytest.mark.parametrize("threshold", [-0.1, 1.0, 2.0])
def test_a_threshold_outside_0_1_is_refused(threshold: float) -> None:
    """Thresholds that would keep everything or nothing are a precise 400."""
    with pytest.raises(OnnxBadInput, match="threshold") as caught:
        masks.postprocess([_ramp()], masks.Size(256, 256), threshold=threshold)
    assert caught.value.param == "threshold"


def test_an_output_that_is_not_one_map_is_an_inference_error() -> None:
    """Outputs of another model's shape fail the item with a precise error."""
    with pytest.raises(OnnxInferenceError, match="not one 2-D map"):
        masks.postprocess([np.zeros((1, 256, 256, 2), np.float32)], masks.Size(256, 256))


def test_preprocess_stretches_into_the_model_input() -> None:
    """Any image becomes [1, 256, 256, 3] float32 in [0, 1], its size kept for the way back."""
    tensor, size = masks.preprocess(Image.new("L", (300, 120), 255))
    assert tensor.shape == (1, 256, 256, 3) and tensor.dtype == np.float32
    assert float(tensor.min()) == 1.0
    assert size == masks.Size(300, 120)


def test_bad_images_are_refused_before_the_model() -> None:
    """Zero-sized, over-limit and float images are precise 400s naming the image."""
    with pytest.raises(OnnxBadInput, match="no pixels"):
        masks.preprocess(Image.new("RGB", (10, 0)))
    with pytest.raises(OnnxBadInput, match="at most 99"):
        masks.preprocess(Image.new("RGB", (10, 10)), max_pixels=99)
    with pytest.raises(OnnxBadInput, match="'F'"):
        masks.preprocess(Image.new("F", (10, 10)))
