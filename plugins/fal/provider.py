"""The Fal images provider: Flux text-to-image, image-to-image and inpainting, LoRA training,
vision and image-to-video over Fal's queue (submit, status stream, result).

Why it exists: it is the thin I/O shell around ``plugins.fal.transforms``. It never retries:
the caller's retry policy calls ``generate`` again, and a ``FalJob`` carried between those calls
makes a retry resume the job already submitted (polling it again) instead of paying for a
second one. ``cancel`` stops a job nobody will read (client gone, deadline passed).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from PIL import Image

from artifacts import FETCH_ERRORS, GuardedFetcher, unusable_url
from plugins.fal.edits import parse_edit_request
from plugins.fal.errors import FalInvalidRequest, FalJobFailed, error_from_response, fal_errors
from plugins.fal.training import TrainingRequest, lora_of, parse_training, training_input
from plugins.fal.transforms import (
    ImageRequest,
    QueueHandle,
    QueueStatus,
    flux_input,
    inline_b64,
    megapixels,
    openai_images,
    parse_image_request,
    parse_status,
    parse_submit,
    submit_url,
)
from plugins.fal.videos import (
    VideoFile,
    VideoRequest,
    parse_video_request,
    served_seconds,
    video_input,
    video_of,
    video_progress,
)
from plugins.fal.vision import VisionRequest, faces_answer, masks_answer, vision_input
from plugins.fal.webhooks import Callback, verify_callback

__all__ = ["FalImages", "FalJob"]

_CANCEL_TIMEOUT_S = 5.0
# A vision request's image is read only for its size; the cap stops a huge body on the way.
_MAX_VISION_BYTES = 32 * 1024 * 1024
_IMAGE_TYPES = ("image/*", "application/octet-stream")


@functools.cache
def _vision_fetcher() -> GuardedFetcher:
    # One per process, built on first use: a FalImages is made per LiteLLM call, and the
    # fetcher's TLS context (the CA bundle) takes ~20 ms to load.
    return GuardedFetcher(max_bytes=_MAX_VISION_BYTES, timeout_s=15.0)


@dataclass(slots=True)
class FalJob:
    """One request's Fal job across attempts: submitted once, then only looked up."""

    handle: QueueHandle | None = None
    key: str | None = None
    finished: bool = False
    last_status: QueueStatus | None = None


class FalImages:
    """Image generation on Fal's Flux models; ``start``/``stop`` own the HTTP client."""

    name = "fal"

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        fetcher: GuardedFetcher | None = None,
    ) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        # A vision request's image URL is the client's, not Fal's: it is read (for the image's
        # size) only through the guarded fetcher, so no client makes the gateway reach inside
        # its network. Fal fetches the same URL from outside, so no allow-list applies.
        self._fetcher = fetcher

    async def start(self) -> None:
        # Reads are unbounded here: the caller's deadline (asyncio) bounds every attempt, and a
        # status stream legitimately stays quiet while a job runs.
        timeout = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=None)
        self._client = httpx.AsyncClient(transport=self._transport, timeout=timeout)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("FalImages.start() was not awaited")
        return self._client

    # --- the provider interface the gateway's media routes use ------------------------------

    def parse(self, body: Mapping[str, Any]) -> ImageRequest:
        """Validate the OpenAI body; raises FalInvalidRequest before anything is sent."""
        return parse_image_request(body)

    def parse_edit(
        self, fields: Mapping[str, Any], image: bytes | None, mask: bytes | None
    ) -> ImageRequest:
        """Validate an OpenAI images.edit form; with a mask the edit is an inpainting."""
        return parse_edit_request(fields, image, mask)

    def billed_megapixels(self, request: ImageRequest) -> int:
        """Megapixels Fal charges for the whole request."""
        return megapixels(request) * request.n

    def new_job(self) -> FalJob:
        return FalJob()

    def job_handle(self, job: FalJob) -> dict[str, Any] | None:
        """What to store so the job can be looked up again later: the request id and the
        queue's URLs, never the key."""
        return None if job.handle is None else msgspec.to_builtins(job.handle)

    def restore_job(self, handle: Mapping[str, Any] | None) -> FalJob:
        """The job of a stored handle (its key is given again with ``use_key``)."""
        return FalJob(handle=None if handle is None else parse_submit(handle))

    def use_key(self, job: FalJob, key: str) -> None:
        """The key the next look-ups of ``job`` use (resolved anew for each call)."""
        job.key = key

    async def generate(
        self, job: FalJob, request: ImageRequest, *, model: str, api_base: str | None, key: str
    ) -> dict[str, Any]:
        """The OpenAI images response for ``request``, submitting only if ``job`` has no
        Fal request yet."""
        with fal_errors():
            if job.handle is None:
                job.handle = await self._submit(request, model, api_base, key)
                job.key = key
            status = await self._wait(job.handle, key)
            job.last_status = status
            result = await self._get_json(job.handle.response_url, key)
            job.finished = True
            fetched = await self._fetch_images(result, request)
            return openai_images(result, request, int(time.time()), fetched)

    async def cancel(self, job: FalJob) -> None:
        """Cancel the job on Fal if it may still run; failures are ignored (best effort)."""
        if job.handle is None or job.finished or job.key is None:
            return
        job.finished = True
        try:
            async with asyncio.timeout(_CANCEL_TIMEOUT_S):
                await self._http.put(job.handle.cancel_url, headers=_auth(job.key))
        except (httpx.HTTPError, TimeoutError):
            return

    # --- LoRA training ----------------------------------------------------------------------

    def parse_training(self, body: Mapping[str, Any], archive: bytes | None) -> TrainingRequest:
        """Validate a fine-tuning job (the archive a zip of images) before anything is sent."""
        return parse_training(body, archive)

    def training_steps(self, request: TrainingRequest) -> int:
        return request.steps

    async def submit_training(
        self,
        job: FalJob,
        request: TrainingRequest,
        *,
        model: str,
        api_base: str | None,
        key: str,
        webhook_url: str | None = None,
    ) -> str:
        """Submit the training once (a retry finds ``job`` submitted); the Fal request id.
        With ``webhook_url`` Fal also calls back there when the job ends."""
        params = {"fal_webhook": webhook_url} if webhook_url else None
        with fal_errors():
            if job.handle is None:
                response = await self._http.post(
                    submit_url(api_base, model),
                    json=training_input(request),
                    headers=_auth(key),
                    params=params,
                )
                _raise_for(response)
                job.handle = parse_submit(response.json())
                job.key = key
            return job.handle.request_id

    async def poll(self, job: FalJob) -> QueueStatus:
        """The job's current status with its logs (one request, never retried here)."""
        if job.handle is None or job.key is None:
            raise FalJobFailed("the job was never submitted")
        with fal_errors():
            response = await self._http.get(
                job.handle.status_url, params={"logs": "1"}, headers=_auth(job.key)
            )
            _raise_for(response)
            status = parse_status(response.json())
        job.last_status = status
        if status.state == "COMPLETED":
            job.finished = True
        return status

    async def trained_lora(self, job: FalJob) -> str:
        """The URL of the trained LoRA file of a completed job."""
        if job.handle is None or job.key is None:
            raise FalJobFailed("the job was never submitted")
        with fal_errors():
            return lora_of(await self._get_json(job.handle.response_url, job.key))

    def verify_callback(
        self, headers: Mapping[str, str], body: bytes, keys: Sequence[str], max_skew_s: float
    ) -> Callback:
        """A verified completion callback, or FalWebhookRejected."""
        return verify_callback(headers, body, keys, now=time.time(), max_skew_s=max_skew_s)

    def callback_lora(self, callback: Callback) -> str:
        """The trained LoRA's URL from a successful callback; FalJobFailed otherwise."""
        if not callback.ok:
            raise FalJobFailed(f"Fal job {callback.request_id} failed: {callback.error}")
        return lora_of(callback.payload)

    # --- image-to-video ---------------------------------------------------------------------

    def parse_video(
        self, fields: Mapping[str, Any], image: bytes | None, image_url: str | None
    ) -> VideoRequest:
        """Validate an OpenAI videos.create form before anything is sent."""
        return parse_video_request(fields, image, image_url)

    def video_seconds(self, request: VideoRequest, model: str) -> int:
        """The clip length ``model`` renders (and bills) for ``request``; raises
        FalInvalidRequest when the model has no image-to-video transform."""
        return served_seconds(request, model)

    def video_status(self, status: QueueStatus, previous: int) -> tuple[str, int]:
        """The OpenAI video status and progress percent for a queue status."""
        return video_progress(status, previous)

    async def submit_video(
        self, job: FalJob, request: VideoRequest, *, model: str, api_base: str | None, key: str
    ) -> str:
        """Submit the video once (a retry finds ``job`` submitted); the Fal request id."""
        with fal_errors():
            if job.handle is None:
                url = submit_url(api_base, model)
                job.handle = await self._submit_body(url, video_input(request, model), key)
                job.key = key
            return job.handle.request_id

    async def video_result(self, job: FalJob) -> VideoFile:
        """The generated video of a completed job."""
        if job.handle is None or job.key is None:
            raise FalJobFailed("the job was never submitted")
        with fal_errors():
            return video_of(await self._get_json(job.handle.response_url, job.key))

    async def download(self, url: str) -> tuple[str, bytes]:
        """A result file's content type and bytes (Fal's media URLs need no key)."""
        inline = inline_b64(url)
        if inline is not None:
            return url[5:].split(";", 1)[0], base64.b64decode(inline)
        with fal_errors():
            response = await self._http.get(url)
            _raise_for(response)
            kind = response.headers.get("content-type", "application/octet-stream")
            return kind, response.content

    # --- vision: face detection and segmentation -------------------------------------------

    async def analyse(
        self, request: VisionRequest, *, model: str, api_base: str | None, key: str
    ) -> dict[str, Any]:
        """Run a vision model over the queue; the answer follows FACES_SCHEMA / MASKS_SCHEMA."""
        with fal_errors():
            size = await self._image_size(request.image_url)
            handle = await self._submit_body(
                submit_url(api_base, model), vision_input(request), key
            )
            await self._wait(handle, key)
            result = await self._get_json(handle.response_url, key)
        if request.kind == "detect":
            return faces_answer(result, *size)
        return masks_answer(result, *size)

    async def _image_size(self, url: str) -> tuple[int, int]:
        """The input's pixel size, which the boxes are converted to."""
        inline = inline_b64(url)
        if inline is not None:
            data = base64.b64decode(inline)
        else:
            try:
                fetcher = self._fetcher or _vision_fetcher()
                data, _ = await fetcher.fetch(url, accept=_IMAGE_TYPES)
            except FETCH_ERRORS as exc:
                raise FalInvalidRequest(unusable_url(exc, "image"), param="messages") from exc
        try:
            with Image.open(io.BytesIO(data)) as image:
                return image.size
        except OSError as exc:
            raise FalInvalidRequest("the image does not decode", param="messages") from exc

    # --- the queue protocol -----------------------------------------------------------------

    async def _submit(
        self, request: ImageRequest, model: str, api_base: str | None, key: str
    ) -> QueueHandle:
        return await self._submit_body(
            submit_url(api_base, model, request), flux_input(request), key
        )

    async def _submit_body(self, url: str, body: dict[str, Any], key: str) -> QueueHandle:
        response = await self._http.post(url, json=body, headers=_auth(key))
        _raise_for(response)
        return parse_submit(response.json())

    async def _wait(self, handle: QueueHandle, key: str) -> QueueStatus:
        """Follow the status stream until COMPLETED (it is sent the moment the job ends)."""
        while True:
            status = await self._stream_status(handle, key)
            if status is not None and status.state == "COMPLETED":
                if status.error is not None:
                    raise FalJobFailed(
                        f"Fal job {handle.request_id} ended: {status.error}",
                        error_type=status.error_type,
                    )
                return status

    async def _stream_status(self, handle: QueueHandle, key: str) -> QueueStatus | None:
        last: QueueStatus | None = None
        url = handle.status_url + "/stream"
        async with self._http.stream(
            "GET", url, params={"logs": "0"}, headers=_auth(key)
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    last = parse_status(json.loads(line[5:]))
                    if last.state == "COMPLETED":
                        break
        return last

    async def _get_json(self, url: str, key: str) -> Any:
        response = await self._http.get(url, headers=_auth(key))
        _raise_for(response)
        return response.json()

    async def _fetch_images(self, result: Any, request: ImageRequest) -> dict[str, str]:
        """Base64 of image URLs that came back as links although b64_json was asked for."""
        if request.response_format != "b64_json" or not isinstance(result, Mapping):
            return {}
        fetched = {}
        for image in result.get("images") or ():
            url = str(image.get("url", ""))
            if url and inline_b64(url) is None:
                response = await self._http.get(url)
                _raise_for(response)
                fetched[url] = base64.b64encode(response.content).decode()
        return fetched


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Key {key}"}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from_response(response.status_code, response.headers, response.text)
