"""MTCNN through its three exported networks and the numpy cascade, against facenet-pytorch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import pytest
from onnx_vision_data import GROUP_FACES, group_photo, portrait
from PIL import Image

from plugins.onnx import mtcnn

DATA = Path(__file__).resolve().parents[1] / "data" / "onnx"


@pytest.fixture(scope="module")
def networks(onnx_models: Path) -> tuple[mtcnn.Network, mtcnn.Network, mtcnn.Network]:
    """PNet, RNet and ONet as callables over the built ONNX models."""

    def network(name: str) -> mtcnn.Network:
        session = ort.InferenceSession(
            str(onnx_models / f"mtcnn-{name}" / "model.onnx"), providers=["CPUExecutionProvider"]
        )

        def run(batch: np.ndarray) -> Sequence[np.ndarray]:
            return [np.asarray(out) for out in session.run(None, {"image": batch})]

        return run

    return network("pnet"), network("rnet"), network("onet")


def test_the_faces_of_a_group_photo_match_facenet_pytorch(
    networks: tuple[mtcnn.Network, mtcnn.Network, mtcnn.Network],
) -> None:
    """Every face facenet-pytorch recorded is found at the same box, score and landmarks."""
    faces = mtcnn.detect(group_photo(), *networks)
    recorded = json.loads((DATA / "mtcnn_group_photo.json").read_text())["faces"]
    assert len(faces) == len(recorded)
    for want in recorded:
        box = np.round(want["box"])
        got = min(faces, key=lambda face: float(np.abs(np.array(face.box) - box).sum()))
        assert np.abs(np.array(got.box) - box).max() <= 1
        assert got.score == pytest.approx(want["score"], abs=1e-4)
        assert np.abs(np.array(got.keypoints) - np.array(want["keypoints"])).max() < 0.5


def test_the_six_people_of_the_group_photo_are_the_confident_faces(
    networks: tuple[mtcnn.Network, mtcnn.Network, mtcnn.Network],
) -> None:
    """Above a 0.95 score exactly the six people remain, each with five landmarks in its box."""
    confident = [face for face in mtcnn.detect(group_photo(), *networks) if face.score > 0.95]
    assert len(confident) == GROUP_FACES
    for face in confident:
        x0, y0, x1, y1 = face.box
        assert len(face.keypoints) == len(mtcnn.KEYPOINTS)
        assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.keypoints)


def test_a_portrait_has_one_face(
    networks: tuple[mtcnn.Network, mtcnn.Network, mtcnn.Network],
) -> None:
    """The astronaut portrait yields a single face."""
    assert len(mtcnn.detect(portrait(), *networks)) == 1


def test_an_image_without_faces_yields_none(
    networks: tuple[mtcnn.Network, mtcnn.Network, mtcnn.Network],
) -> None:
    """A uniform image gives an empty list, not an error."""
    assert mtcnn.detect(Image.new("RGB", (120, 90), (40, 90, 160)), *networks) == []


def test_area_resampling_averages_whole_cells() -> None:
    """Halving a 4x4 image averages each 2x2 block, as torch's area mode does."""
    pixels = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    assert mtcnn._area_resize(pixels, 2, 2)[..., 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
