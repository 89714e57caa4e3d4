"""The Vertex plugin inside LiteLLM: a CustomLLM for `litellm_settings.custom_provider_map`.

Why it exists: LiteLLM's router builds a deployment for every model group, and `vertex/` is no
provider it knows; with this entry `litellm --config litellm_config.yaml` (without the gateway)
serves the `vertex/` image groups too, through the same provider class as the gateway's own
routes. LiteLLM hands a custom provider only part of a request: generation gets the prompt and
the options it keeps (not `n`, `size` or `response_format`), edits get the images and the
deployment's parameters; so under stock LiteLLM one image is made per request, and the
gateway's route (`proxy.media`) serves the full request. Imported by LiteLLM only (it loads
LiteLLM), never by `plugins.vertex` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import ImageObject, ImageResponse

from plugins.vertex.errors import CREDENTIALS_HINT, VertexError
from plugins.vertex.provider import VertexImages

__all__ = ["VertexLiteLLM", "vertex_handler"]

# Request options LiteLLM passes through that mean the same to the plugin.
_KEPT = ("seed", "aspect_ratio", "image_size")
# Deployment options (litellm_params) the plugin validates and applies per model group.
_OPTIONS = (
    "safety_settings",
    "vertex_project",
    "vertex_location",
    "safety_filter_level",
    "person_generation",
    "add_watermark",
)
_GROUP = "litellm"


class VertexLiteLLM(CustomLLM):
    """`aimage_generation` and `aimage_edit` on Vertex AI through `VertexImages`."""

    async def aimage_generation(  # noqa: PLR0917 - LiteLLM calls it with this signature
        self,
        model: str,
        prompt: str,
        model_response: ImageResponse,
        api_key: str | None,
        api_base: str | None,
        optional_params: dict[str, Any],
        logging_obj: Any,
        timeout: Any = None,  # noqa: ASYNC109 - LiteLLM passes it; the caller's deadline rules
        client: Any = None,
    ) -> ImageResponse:
        body = {"prompt": prompt, **{k: optional_params[k] for k in _KEPT if k in optional_params}}
        return await self._run(
            model,
            api_key=api_key,
            api_base=api_base,
            params=optional_params,
            model_response=model_response,
            parse=lambda p: p.parse(body),
        )

    async def aimage_edit(  # noqa: PLR0917 - LiteLLM calls it with this signature
        self,
        model: str,
        image: Any,
        prompt: str | None,
        model_response: ImageResponse,
        api_key: str | None,
        api_base: str | None,
        optional_params: dict[str, Any],
        logging_obj: Any,
        timeout: Any = None,  # noqa: ASYNC109 - LiteLLM passes it; the caller's deadline rules
        client: Any = None,
    ) -> ImageResponse:
        images = [_read(item) for item in (image if isinstance(image, list) else [image])]
        fields = {
            "prompt": prompt or "",
            **{k: optional_params[k] for k in _KEPT if k in optional_params},
        }
        return await self._run(
            model,
            api_key=api_key,
            api_base=api_base,
            params=optional_params,
            model_response=model_response,
            parse=lambda p: p.parse_edit(fields, images, None),
        )

    async def _run(
        self,
        model: str,
        *,
        api_key: str | None,
        api_base: str | None,
        params: Mapping[str, Any],
        model_response: ImageResponse,
        parse: Callable[[VertexImages], Any],
    ) -> ImageResponse:
        if not api_key:
            raise _error(401, f"no Vertex credentials: {CREDENTIALS_HINT}")
        provider = VertexImages()
        await provider.start()
        try:
            provider.configure(_GROUP, model, {k: params[k] for k in _OPTIONS if k in params})
            request = parse(provider)
            provider.check(request, group=_GROUP, model=model)
            answer = await provider.generate(
                provider.new_job(),
                request,
                model=model,
                api_base=api_base,
                key=api_key,
                group=_GROUP,
            )
        except VertexError as exc:
            raise _error(exc.status_code, exc.message) from exc
        finally:
            await provider.stop()
        model_response.created = int(time.time())
        model_response.data = [
            ImageObject(b64_json=item.get("b64_json"), url=item.get("url"))
            for item in answer["data"]
        ]
        return model_response


def _read(item: Any) -> bytes:
    """LiteLLM hands each image as a file-like object (BytesIO) or bytes."""
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    data = item.read() if hasattr(item, "read") else b""
    return data if isinstance(data, bytes) else b""


def _error(status: int, message: str) -> Exception:
    """LiteLLM's error for a custom provider (it maps the status to its own classes)."""
    error: Exception = CustomLLMError(status_code=status, message=message)  # type: ignore[no-untyped-call]
    return error


vertex_handler = VertexLiteLLM()
