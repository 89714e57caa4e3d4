"""The vision kinds' pure rules: the chat answers read into `[x, y, w, h]` boxes, masks merged
and stored as one channel, images checked before decoding, and the published schemas."""

from __future__ import annotations

import io
import json

import jsonschema_rs
import msgspec
import numpy as np
import pytest
from PIL import Image

from artifacts.links import OutputArtifact
from pipelines._errors import AnswerInvalid, ImageTooLarge
from pipelines._proxy_http import Served
from pipelines._vision_answers import (
    decode_image,
    faces_from_answer,
    mask_png,
    masks_from_answer,
    merge_masks,
    region_of_mask,
    select_faces,
)
from pipelines._vision_schemas import Face, FacesSucceeded, Region, SegmentationSucceeded
from pipelines.vision import event_schemas


def _answer(width: int, height: int, faces: list[dict[str, object]]) -> str:
    return json.dumps({"width": width, "height": height, "faces": faces})


def test_corner_boxes_become_clipped_xywh_boxes() -> None:
    """[x0, y0, x1, y1] becomes [x, y, w, h] inside the image; an empty box is dropped."""
    content = _answer(
        100,
        80,
        [
            {"box": [10, 20, 40, 60], "score": 0.9},
            {"box": [90, 70, 130, 95], "score": 1.4},
            {"box": [50, 50, 50, 70], "score": None},
        ],
    )
    faces = faces_from_answer(content, 100, 80)
    assert [(f.box, f.score) for f in faces] == [([10, 20, 30, 40], 0.9), ([90, 70, 10, 10], 1.0)]


def test_boxes_of_an_image_read_at_another_size_are_rescaled() -> None:
    """Boxes of a 50x40 reading of a 100x80 input are doubled."""
    faces = faces_from_answer(_answer(50, 40, [{"box": [5, 5, 15, 25], "score": None}]), 100, 80)
    assert faces == [Face(box=[10, 10, 20, 40])]


@pytest.mark.parametrize(
    "content",
    [
        None,
        "not json",
        json.dumps({"width": 10, "height": 10}),
        _answer(10, 10, [{"box": [1, 2, 3], "score": None}]),
        _answer(0, 10, []),
    ],
    ids=["empty", "not-json", "no-faces", "three-values", "no-size"],
)
def test_an_answer_off_its_schema_is_answer_invalid(content: str | None) -> None:
    """Missing content, non-JSON, a missing field, a short box and a zero size all fail."""
    with pytest.raises(AnswerInvalid) as failed:
        faces_from_answer(content, 10, 10)
    assert failed.value.retriable is False


def test_faces_are_selected_best_first_keeping_unscored_ones() -> None:
    """min_score drops weak faces but not unscored ones; max_faces keeps the best."""
    faces = [Face(box=[0, 0, 1, 1], score=s) for s in (0.6, None, 0.9, 0.3)]
    kept = select_faces(faces, min_score=0.5, max_faces=None)
    assert [f.score for f in kept] == [0.9, 0.6, None]
    assert [f.score for f in select_faces(faces, None, 2)] == [0.9, 0.6]


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_masks_of_any_mode_and_size_merge_into_one_mask_of_the_input() -> None:
    """An RGB mask and a half-size grey one are united at the input's size (>= 128 is on)."""
    left = Image.new("RGB", (8, 4), (0, 0, 0))
    left.paste((255, 255, 255), (0, 0, 2, 4))
    right = Image.new("L", (4, 2), 100)  # below the threshold ...
    right.paste(200, (3, 0, 4, 2))  # ... except its last column
    merged = merge_masks([_png(left), _png(right)], 8, 4)
    expected = np.zeros((4, 8), bool)
    expected[:, :2] = True
    expected[:, 6:] = True
    assert np.array_equal(merged, expected)
    stored = Image.open(io.BytesIO(mask_png(merged)))
    assert (stored.mode, stored.size) == ("L", (8, 4))
    assert np.array_equal(np.asarray(stored) == 255, expected)
    assert region_of_mask(merged, 0.5) == [Region(box=[0, 0, 8, 4], score=0.5)]
    assert region_of_mask(np.zeros((4, 8), bool), None) == []


def test_a_mask_that_does_not_decode_is_answer_invalid() -> None:
    """A mask file that is not an image fails the answer, naming which mask."""
    with pytest.raises(AnswerInvalid, match="mask 1"):
        merge_masks([_png(Image.new("L", (2, 2))), b"nope"], 2, 2)


def test_a_segmentation_answer_gives_its_links_and_boxes() -> None:
    """SAM-3's answer gives the mask links in order and their boxes as [x, y, w, h]."""
    content = json.dumps(
        {
            "width": 40,
            "height": 30,
            "masks": [{"url": "https://cdn.example/m0.png", "score": 0.8, "box": [4, 3, 20, 30]}],
        }
    )
    urls, regions = masks_from_answer(content, 40, 30)
    assert urls == ["https://cdn.example/m0.png"]
    assert regions == [Region(box=[4, 3, 16, 27], score=0.8)]


def test_an_image_over_max_pixels_is_refused_from_its_header() -> None:
    """A 300x200 WebP passes at 60000 pixels and is ImageTooLarge at 59999."""
    out = io.BytesIO()
    Image.new("RGB", (300, 200), "blue").save(out, format="WEBP")
    assert decode_image(out.getvalue(), max_pixels=60_000).size == (300, 200)
    with pytest.raises(ImageTooLarge, match="300x200"):
        decode_image(out.getvalue(), max_pixels=59_999)


def _results_validator() -> jsonschema_rs.Validator:
    schemas = event_schemas()
    return jsonschema_rs.validator_for(
        {**schemas["properties"]["results"], "$defs": schemas["$defs"]}
    )


def test_results_validate_and_a_three_value_box_does_not() -> None:
    """Both success results validate against the published schema; a face box of three
    values is rejected by the schema and by the strict decoder alike."""
    served = Served(provider="onnx", model="blazeface-full-range", cost_usd=0.0, images=1)
    faces = FacesSucceeded(
        event_id="e.result",
        request_id="e",
        subject="s",
        task="face-detection",
        faces=[Face(box=[1, 2, 3, 4], score=0.7)],
        width=10,
        height=10,
        served=served,
    )
    mask = SegmentationSucceeded(
        event_id="m.result",
        request_id="m",
        subject="s",
        task="segmentation",
        mask=OutputArtifact(artifact_id="a" * 64, content_type="image/png", size=10),
        width=10,
        height=10,
        foreground_fraction=0.25,
        served=served,
    )
    validator = _results_validator()
    for result in (faces, mask):
        validator.validate(msgspec.to_builtins(result))
    bad = msgspec.to_builtins(faces)
    bad["faces"][0]["box"] = [1, 2, 3]
    assert not validator.is_valid(bad)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(bad), type=FacesSucceeded, strict=True)
