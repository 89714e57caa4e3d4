"""The Vertex AI images provider: Gemini image generation and multi-image editing through
generateContent, and the dedicated virtual try-on model through `:predict`.

Why it exists: it is the thin I/O shell around ``plugins.vertex.transforms`` / ``edits`` /
``options`` and ``auth``. It never retries: the caller's retry policy calls ``generate`` again
with the same ``VertexJob``, which keeps every image (and every try-on step) already paid for,
so a retry only makes what is still missing.

Gemini makes one image per call, so ``n`` images are ``n`` concurrent calls; a seed moves by
the image's index. Each model group's options (safety settings, project, location) come from
its litellm_params, handed over once at start-up through ``configure``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from plugins.vertex.auth import TokenCache
from plugins.vertex.edits import check_for_model, parse_edit_request, predict_body, try_on_images
from plugins.vertex.errors import (
    CREDENTIALS_HINT,
    VertexCredentialsError,
    error_from_response,
    vertex_errors,
)
from plugins.vertex.options import ModelOptions, is_try_on, parse_model_options
from plugins.vertex.transforms import (
    ImageRequest,
    InlineImage,
    generate_content_body,
    images_of_answer,
    model_url,
    openai_images,
    parse_image_request,
)

__all__ = ["VertexImages", "VertexJob"]

_DEFAULT_LOCATION = {"gemini": "global", "try-on": "us-central1"}


@dataclass(slots=True)
class VertexJob:
    """One request's results across attempts, per model: what has been made is not remade."""

    # model -> image index -> image (Gemini), or the try-on's finished steps.
    images: dict[str, dict[int, InlineImage]] = field(default_factory=dict)
    steps: dict[str, list[InlineImage]] = field(default_factory=dict)


class VertexImages:
    """Image generation and editing on Vertex AI; ``start``/``stop`` own the HTTP client."""

    name = "vertex"
    # Edits may carry several images (a person and garments), in the order sent.
    multi_image_edits = True

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        self._transport = transport
        self._tokens = tokens if tokens is not None else TokenCache()
        self._client: httpx.AsyncClient | None = None
        self._options: dict[str, ModelOptions] = {}

    async def start(self) -> None:
        # Reads are unbounded here: the caller's deadline (asyncio) bounds every attempt.
        timeout = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=None)
        self._client = httpx.AsyncClient(transport=self._transport, timeout=timeout)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("VertexImages.start() was not awaited")
        return self._client

    # --- the provider interface the gateway's media routes use ------------------------------

    def configure(self, group: str, model: str, params: Mapping[str, Any]) -> None:
        """Validate and keep one model group's options; VertexConfigError names a bad one."""
        self._options[group] = parse_model_options(group, model, params)

    def options(self, group: str) -> ModelOptions:
        return self._options.get(group, ModelOptions())

    def parse(self, body: Mapping[str, Any]) -> ImageRequest:
        """Validate the OpenAI body; raises VertexInvalidRequest before anything is sent."""
        return parse_image_request(body)

    def parse_edit(
        self, fields: Mapping[str, Any], images: Sequence[bytes], mask: bytes | None
    ) -> ImageRequest:
        """Validate an OpenAI images.edit form with one or more images."""
        return parse_edit_request(fields, images, mask)

    def check(self, request: ImageRequest, *, group: str, model: str) -> None:
        """Refuse what one deployment's model cannot take, before any call."""
        check_for_model(request, model, self.options(group))

    def billed_images(self, request: ImageRequest, model: str) -> int:
        """Images Vertex charges for: n, plus each intermediate try-on step."""
        if is_try_on(model) and len(request.images) > 2:
            return request.n + len(request.images) - 2
        return request.n

    def billed_megapixels(self, request: ImageRequest) -> int:
        # Vertex prices images per image, not per megapixel (see billed_images).
        return 0

    def new_job(self) -> VertexJob:
        return VertexJob()

    async def generate(
        self,
        job: VertexJob,
        request: ImageRequest,
        *,
        model: str,
        api_base: str | None,
        key: str,
        group: str | None = None,
    ) -> dict[str, Any]:
        """The OpenAI images response for ``request`` on ``model``."""
        options = self.options(group) if group is not None else ModelOptions()
        with vertex_errors():
            project = options.project or self._tokens.credential(key).project_id
            if not project:
                raise VertexCredentialsError(
                    f"no Google Cloud project for Vertex: {CREDENTIALS_HINT}"
                )
            kind = "try-on" if is_try_on(model) else "gemini"
            location = options.location or _DEFAULT_LOCATION[kind]
            if kind == "try-on":
                url = model_url(api_base, project, location, model, "predict")
                images = await self._try_on(
                    job, request, url=url, key=key, model=model, options=options
                )
            else:
                url = model_url(api_base, project, location, model, "generateContent")
                images = await self._gemini(
                    job, request, url=url, key=key, model=model, options=options
                )
        return openai_images(images, request, int(time.time()))

    async def cancel(self, job: VertexJob) -> None:
        """Nothing to cancel: Vertex calls are synchronous and end with the request."""
        return

    # --- calls ------------------------------------------------------------------------------

    async def _post(self, url: str, body: dict[str, Any], key: str) -> Any:
        # Looked up per call (cached): a long try-on chain outlives no token.
        token = await self._tokens.token(key)
        response = await self._http.post(
            url, json=body, headers={"authorization": f"Bearer {token}"}
        )
        if response.status_code >= 400:
            if response.status_code == 401:
                self._tokens.forget(key)
            raise error_from_response(response.status_code, response.headers, response.text)
        return response.json()

    async def _gemini(
        self,
        job: VertexJob,
        request: ImageRequest,
        *,
        url: str,
        key: str,
        model: str,
        options: ModelOptions,
    ) -> list[InlineImage]:
        made = job.images.setdefault(model, {})

        async def one(index: int) -> None:
            body = generate_content_body(request, options, index=index)
            made[index] = images_of_answer(await self._post(url, body, key))[0]

        missing = [index for index in range(request.n) if index not in made]
        # Every call runs to its end even when one fails, so that what was paid for is kept.
        outcomes = await asyncio.gather(*(one(i) for i in missing), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [made[index] for index in range(request.n)]

    async def _try_on(
        self,
        job: VertexJob,
        request: ImageRequest,
        *,
        url: str,
        key: str,
        model: str,
        options: ModelOptions,
    ) -> list[InlineImage]:
        person, garments = request.images[0], request.images[1:]
        steps = job.steps.setdefault(model, [])
        # Steps before the last dress one garment each on the previous step's single output.
        while len(steps) < len(garments) - 1:
            current = steps[-1] if steps else person
            body = predict_body(
                current, garments[len(steps)], samples=1, seed=request.seed, options=options
            )
            steps.append(try_on_images(await self._post(url, body, key))[0])
        current = steps[-1] if steps else person
        body = predict_body(
            current, garments[-1], samples=request.n, seed=request.seed, options=options
        )
        return try_on_images(await self._post(url, body, key))[: request.n]
