"""BlazeFace's pre/post-processing finds the faces of a real photo and refuses bad images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from onnx_vision_data import GROUP_FACES, group_photo, group_photo_jpeg
from PIL import Image

from plugins.onnx import faces
from plugins.onnx.errors import OnnxBadInput, OnnxInferenceError
from plugins.onnx.export.blazeface import SPEC as BLAZEFACE
from plugins.onnx.images import decode_image

Detect = Callable[..., list[faces.Face]]  # (image, original size or None)


@pytest.fixture(scope="session")
def detect(onnx_models: Path) -> Detect:
    session = onnxruntime.InferenceSession(
        str(onnx_models / BLAZEFACE.name / "model.onnx"), providers=["CPUExecutionProvider"]
    )

    def run(image: Image.Image, original: tuple[int, int] | None = None) -> list[faces.Face]:
        tensor, letterbox = faces.preprocess(image, original)
        return faces.postprocess(session.run(None, {"image": tensor}), letterbox)

    return run


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_every_face_of_the_group_photo_is_found(detect: Detect) -> None:
    """The six faces of the group photo are found, one box each, inside the photo."""
    photo = group_photo()
    found = detect(photo)
    assert len(found) == GROUP_FACES
    for face in found:
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
        assert 0.5 <= face.score <= 1.0
    assert all(_iou(a.box, b.box) < 0.05 for i, a in enumerate(found) for b in found[i + 1 :])


def test_group_photo_boxes_are_face_sized_and_hold_their_eyes(detect: Detect) -> None:
    """Each box is a roughly square face (60-200 px on a 1280x886 photo) holding both eyes,
    the person's right eye on the image's left."""
    for face in detect(group_photo()):
        x0, y0, x1, y1 = face.box
        assert 60 <= x1 - x0 <= 200
        assert 0.75 <= (x1 - x0) / (y1 - y0) <= 1.33
        for x, y in face.keypoints[:2]:  # the eyes
            assert x0 <= x <= x1 and y0 <= y <= y1
        assert faces.KEYPOINTS[0] == "right_eye"
        assert face.keypoints[0][0] < face.keypoints[1][0]


def test_faces_are_found_at_the_same_place_in_a_padded_copy(detect: Detect) -> None:
    """Letterboxing is undone: the photo pasted into a square canvas gives the same boxes."""
    photo = group_photo()
    offset = (photo.width - photo.height) // 2
    square = Image.new("RGB", (photo.width, photo.width))  # same scale, other padding
    square.paste(photo, (0, offset))
    original = sorted(f.box for f in detect(photo))
    shifted = sorted(f.box for f in detect(square))
    assert len(shifted) == len(original) == GROUP_FACES
    for a, b in zip(original, shifted, strict=True):
        assert _iou(a, (b[0], b[1] - offset, b[2], b[3] - offset)) > 0.8


def test_a_jpeg_decoded_at_reduced_scale_gives_the_same_faces_in_its_own_pixels(
    detect: Detect,
) -> None:
    """The group photo's JPEG decoded for the 192 px model (a quarter of its size) gives the
    same six boxes as the whole photo, in the 1280x886 photo's pixels."""
    decoded = decode_image(group_photo_jpeg(), at_least=faces.INPUT_SIZE)
    assert decoded.size == (1280, 886) and decoded.image.size == (320, 222)
    whole = sorted(f.box for f in detect(group_photo()))
    reduced = sorted(f.box for f in detect(decoded.image, decoded.size))
    assert len(reduced) == len(whole) == GROUP_FACES
    for a, b in zip(whole, reduced, strict=True):
        assert _iou(a, b) > 0.85


def test_a_blank_image_has_no_face(detect: Detect) -> None:
    """A grey image yields no face at the default score threshold."""
    assert detect(Image.new("RGB", (640, 480), (128, 128, 128))) == []


def test_full_range_anchors_are_a_48_by_48_grid() -> None:
    """Full range: 2304 anchors, one per 4-pixel cell, row by row from the top-left."""
    anchors = faces.ssd_anchors(faces.FULL_RANGE)
    assert anchors.shape == (2304, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(anchors[1], [1.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(anchors[48], [0.5 / 48, 1.5 / 48])


def test_short_range_anchors_number_896() -> None:
    """Short range: 2 anchors per cell of the 16x16 grid, 6 per cell of the 8x8 grid."""
    anchors = faces.ssd_anchors(faces.SHORT_RANGE)
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[0], anchors[1])  # two anchors share the first cell


def test_weighted_nms_merges_overlapping_boxes_by_score() -> None:
    """Overlapping rows merge into their score-weighted mean, keeping the best score."""
    rows = np.array([[0, 0, 10, 10, 5, 5], [1, 1, 11, 11, 7, 7], [50, 50, 60, 60, 0, 0]], float)
    scores = np.array([0.9, 0.3, 0.6])
    kept, kept_scores = faces.non_max_suppression(rows, scores, iou=0.3, weighted=True)
    np.testing.assert_allclose(kept_scores, [0.9, 0.6])
    np.testing.assert_allclose(kept[0], (rows[0] * 0.9 + rows[1] * 0.3) / 1.2)
    np.testing.assert_allclose(kept[1], rows[2])


def test_plain_nms_keeps_the_best_box_unchanged() -> None:
    """Without weighting, the best row of an overlapping group is kept as it is."""
    rows = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], float)
    kept, kept_scores = faces.non_max_suppression(
        rows, np.array([0.4, 0.8]), iou=0.3, weighted=False
    )
    np.testing.assert_allclose(kept, [rows[1]])
    np.testing.assert_allclose(kept_scores, [0.8])


def test_nms_keeps_boxes_that_overlap_less_than_the_threshold() -> None:
    """Two boxes with IoU 1/3 both survive a 0.5 threshold and one survives 0.3."""
    rows = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)
    scores = np.array([0.9, 0.8])
    assert len(faces.non_max_suppression(rows, scores, iou=0.5, weighted=True)[0]) == 2
    assert len(faces.non_max_suppression(rows, scores, iou=0.3, weighted=True)[0]) == 1


def test_one_candidate_decodes_to_pixels_of_the_original_image() -> None:
    """A candidate centred on an anchor maps back through the letterbox to original pixels."""
    _, letterbox = faces.preprocess(Image.new("RGB", (400, 200)))  # padded top and bottom
    regressors = np.zeros((1, 2304, 16), np.float32)
    logits = np.full((1, 2304, 1), -100.0, np.float32)
    cell = 24 * 48 + 24  # anchor centre (24.5 / 48, 24.5 / 48) of the input
    regressors[0, cell, 2:4] = 48.0  # 48x48 input pixels
    logits[0, cell, 0] = 5.0
    (face,) = faces.postprocess([regressors, logits], letterbox)
    centre = 24.5 / 48 * 192
    scale = 192 / 400
    expected = (
        round((centre - 24) / scale),
        round((centre - 24 - 48) / scale),
        round((centre + 24) / scale),
        round((centre + 24 - 48) / scale),
    )
    assert face.box == expected
    assert face.score == pytest.approx(1 / (1 + np.exp(-5.0)))


def test_min_score_filters_candidates() -> None:
    """A candidate below `min_score` is dropped."""
    _, letterbox = faces.preprocess(Image.new("RGB", (192, 192)))
    regressors = np.zeros((1, 2304, 16), np.float32)
    regressors[0, :, 2:4] = 20.0
    logits = np.full((1, 2304, 1), -100.0, np.float32)
    logits[0, 100, 0] = 0.0  # score 0.5
    assert len(faces.postprocess([regressors, logits], letterbox, min_score=0.5)) == 1
    assert faces.postprocess([regressors, logits], letterbox, min_score=0.6) == []


def test_outputs_of_another_model_are_an_inference_error() -> None:
    """Outputs whose shape matches no anchor layout fail the item with a precise error."""
    _, letterbox = faces.preprocess(Image.new("RGB", (192, 192)))
    with pytest.raises(OnnxInferenceError, match="2304 anchors"):
        faces.postprocess([np.zeros((1, 896, 16)), np.zeros((1, 896, 1))], letterbox)


def test_preprocess_letterboxes_into_the_model_input() -> None:
    """A wide image fills the width; the padding rows are black (-1); values lie in [-1, 1]."""
    tensor, letterbox = faces.preprocess(Image.new("RGB", (400, 100), (255, 255, 255)))
    assert tensor.shape == (1, 192, 192, 3)
    assert tensor.dtype == np.float32
    assert letterbox.pad_y == 72 and letterbox.pad_x == 0
    assert np.all(tensor[0, :72] == -1.0) and np.all(tensor[0, 72:120] == 1.0)


@pytest.mark.parametrize("mode", ["RGBA", "L", "LA", "P"])
def test_alpha_and_greyscale_images_are_converted(mode: str) -> None:
    """Images with alpha or one channel become RGB input of the same shape."""
    tensor, _ = faces.preprocess(Image.new(mode, (50, 40)))
    assert tensor.shape == (1, 192, 192, 3)


@pytest.mark.parametrize("mode", ["I", "F"])
def test_images_of_other_modes_are_refused(mode: str) -> None:
    """32-bit integer and float images are a 400 naming the image."""
    with pytest.raises(OnnxBadInput, match="not supported") as caught:
        faces.preprocess(Image.new(mode, (50, 40)))
    assert caught.value.param == "image"


def test_a_zero_sized_image_is_refused() -> None:
    """An image without pixels is a precise 400."""
    with pytest.raises(OnnxBadInput, match="no pixels"):
        faces.preprocess(Image.new("RGB", (0, 10)))


def test_an_image_over_the_pixel_limit_is_refused() -> None:
    """The pixel limit is configurable and its message gives both sizes."""
    with pytest.raises(OnnxBadInput, match=r"100x100 \(10000 pixels\); at most 9999"):
        faces.preprocess(Image.new("RGB", (100, 100)), max_pixels=9999)
