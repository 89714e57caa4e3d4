"""Image models (face boxes, person masks) behind the micro-batcher, answering the vision JSON.

Why it exists: the face-detection and segmentation tasks can be served by Fal or by a model
running here, and the client must not see the difference: the answers follow the same JSON
(`FACES_SCHEMA` / `MASKS_SCHEMA` of the vision tasks: pixel boxes of the image sent, masks as
PNG URLs of its size). The model-specific pre- and post-processing (anchors, NMS, thresholds)
lives in `plugins.onnx.faces` / `plugins.onnx.masks`; this module batches, runs and shapes.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from PIL import Image

from plugins.onnx.batching import MicroBatcher
from plugins.onnx.errors import OnnxError, OnnxInferenceError
from plugins.onnx.session import ModelSession, SessionOptions
from plugins.onnx.settings import BatchSettings

__all__ = ["ImageModel", "Postprocess", "Preprocess", "faces_answer", "masks_answer"]

ResultT = TypeVar("ResultT")
# (image, the size of the original it was decoded from) -> (input tensor with a leading batch
# axis of 1, what postprocess needs to map back to the original's pixels)
Preprocess = Callable[[Image.Image, tuple[int, int]], tuple[np.ndarray, Any]]
# (this item's outputs, each with a batch axis of 1; the preprocess context) -> result
Postprocess = Callable[[Sequence[np.ndarray], Any], ResultT]


@dataclass(frozen=True, slots=True)
class _Item:
    tensor: np.ndarray
    context: Any


class ImageModel(Generic[ResultT]):
    """One image model: preprocess in the caller's thread pool, batch, run, postprocess."""

    def __init__(
        self,
        name: str,
        folder: Path,
        *,
        preprocess: Preprocess,
        postprocess: Postprocess[ResultT],
        batching: BatchSettings,
        options: SessionOptions | None = None,
        input_side: int | None = None,
    ) -> None:
        self.name = name
        # The pixels per side the model reads: what a JPEG may be decoded down to
        # (plugins.onnx.images.decode_reduced); None for a model that wants every pixel.
        self.input_side = input_side
        self._session = ModelSession(name, folder, options)
        self._pre = preprocess
        self._post = postprocess
        self._batcher = MicroBatcher[_Item, ResultT](name, self._run, batching)
        self._fixed_batch = False

    @property
    def batcher(self) -> MicroBatcher[_Item, ResultT]:
        return self._batcher

    @property
    def session(self) -> ModelSession:
        return self._session

    async def start(self) -> None:
        await self._session.start()
        # A model exported with a fixed batch of 1 is run once per item of a batch.
        self._fixed_batch = self._session.inputs[0].shape[:1] == (1,)
        await self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()
        self._session.close()

    async def infer(self, image: Image.Image, size: tuple[int, int] | None = None) -> ResultT:
        """The postprocessed result for one decoded RGB image, in pixels of `size` (the
        original's, when `image` was decoded at reduced scale; `image.size` by default)."""
        # Resizing a photo takes milliseconds: off the event loop.
        tensor, context = await asyncio.to_thread(self._pre, image, size or image.size)
        return await self._batcher.submit(_Item(tensor, context))

    async def _outputs(self, batch: Sequence[_Item]) -> list[list[np.ndarray]]:
        """Each item's outputs (batch axis kept, of size 1)."""
        input_name = self._session.inputs[0].name
        if self._fixed_batch or len(batch) == 1:
            return [await self._session.run({input_name: item.tensor}) for item in batch]
        stacked = np.concatenate([item.tensor for item in batch], axis=0)
        outputs = await self._session.run({input_name: stacked})
        for output in outputs:
            if output.shape[:1] != (len(batch),):
                raise OnnxInferenceError(
                    f"model {self.name!r} output of shape {output.shape} has no batch axis"
                )
        return [[o[i : i + 1] for o in outputs] for i in range(len(batch))]

    async def _run(self, batch: Sequence[_Item]) -> list[ResultT | OnnxError]:
        per_item = await self._outputs(batch)
        # Decoding boxes or resizing masks takes milliseconds per image: off the event loop.
        return await asyncio.to_thread(self._postprocess_all, batch, per_item)

    def _postprocess_all(
        self, batch: Sequence[_Item], per_item: Sequence[Sequence[np.ndarray]]
    ) -> list[ResultT | OnnxError]:
        results: list[ResultT | OnnxError] = []
        for item, outputs in zip(batch, per_item, strict=True):
            try:
                results.append(self._post(outputs, item.context))
            except OnnxError as exc:  # this item's outputs cannot be read: it fails alone
                results.append(exc)
        return results


def _clip_box(box: Sequence[float], width: int, height: int) -> list[int] | None:
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    return [x0, y0, x1, y1] if x0 < x1 and y0 < y1 else None


def faces_answer(faces: Sequence[Any], width: int, height: int) -> dict[str, Any]:
    """Faces (each with `box` in pixels and `score`) as the face-detection task's JSON."""
    answer = []
    for face in faces:
        box = _clip_box(face.box, width, height)
        if box is not None:
            score = min(1.0, max(0.0, float(face.score)))
            answer.append({"box": box, "score": round(score, 4)})
    return {"width": width, "height": height, "faces": answer}


def masks_answer(mask: Any, width: int, height: int) -> dict[str, Any]:
    """A person mask (`mask`: bool [height, width], `to_png()`) as the segmentation JSON: one
    mask of the image's size when any pixel is foreground, none otherwise."""
    pixels = np.asarray(mask.mask, dtype=bool)
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    if rows.size == 0:
        return {"width": width, "height": height, "masks": []}
    box = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]
    score = getattr(mask, "score", None)
    url = "data:image/png;base64," + base64.b64encode(mask.to_png()).decode()
    entry = {"url": url, "score": None if score is None else round(float(score), 4), "box": box}
    return {"width": width, "height": height, "masks": [entry]}
