"""The Fal plugin inside LiteLLM: a CustomLLM for `litellm_settings.custom_provider_map`.

Why it exists: `litellm --config litellm_config.yaml` (without the gateway) must still serve the
`fal/` image tasks, and the vision tasks (face detection, segmentation) reach Fal through this
class under both: the gateway's chat fast path calls `litellm.acompletion`, which LiteLLM hands
here. LiteLLM's image seam passes a custom provider only the prompt and the options it keeps (it
drops `n`, `size` and `response_format`), so under stock LiteLLM one image is served at the
model's defaults; the gateway's own route (`proxy.media`) serves the full request. Imported by
LiteLLM only (it loads LiteLLM), never by `plugins.fal` itself.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import Choices, ImageObject, ImageResponse, Message, ModelResponse, Usage

from plugins.fal.errors import FalError
from plugins.fal.provider import FalImages
from plugins.fal.transforms import parse_image_request
from plugins.fal.vision import parse_vision_chat

__all__ = ["FalLiteLLM", "fal_handler"]

# Options LiteLLM passes through to a custom provider that mean the same to Fal.
_KEPT = ("seed", "loras", "num_inference_steps", "guidance_scale", "output_format")


class FalLiteLLM(CustomLLM):
    """`aimage_generation`, and `acompletion` for the vision tasks (face detection, segmentation:
    a JSON answer), over Fal's queue through the same provider class as the gateway."""

    async def acompletion(  # noqa: PLR0917 - LiteLLM calls it with this signature
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Any,
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: Any = None,
        timeout: Any = None,  # noqa: ASYNC109 - LiteLLM passes it; the caller's deadline rules
        client: Any = None,
    ) -> ModelResponse:
        if not api_key:
            raise _error(401, "no Fal key: set FAL_KEY")
        images = FalImages()
        await images.start()
        try:
            request = parse_vision_chat(messages, _kind(model))
            answer = await images.analyse(request, model=model, api_base=api_base, key=api_key)
        except FalError as exc:
            raise _error(exc.status_code, exc.message) from exc
        finally:
            await images.stop()
        model_response.model = model
        model_response.choices = [
            Choices(
                index=0,
                finish_reason="stop",
                message=Message(role="assistant", content=json.dumps(answer)),
            )
        ]
        model_response.usage = Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)  # type: ignore[attr-defined]
        return model_response

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
        if not api_key:
            raise _error(401, "no Fal key: set FAL_KEY")
        body = {"prompt": prompt, **{k: optional_params[k] for k in _KEPT if k in optional_params}}
        images = FalImages()
        await images.start()
        try:
            request = parse_image_request(body)
            answer = await images.generate(
                images.new_job(), request, model=model, api_base=api_base, key=api_key
            )
        except FalError as exc:
            raise _error(exc.status_code, exc.message) from exc
        finally:
            await images.stop()
        model_response.created = int(time.time())
        model_response.data = [ImageObject(url=item.get("url")) for item in answer["data"]]
        return model_response


def _error(status: int, message: str) -> Exception:
    """LiteLLM's error for a custom provider (it maps the status to its own classes)."""
    error: Exception = CustomLLMError(status_code=status, message=message)  # type: ignore[no-untyped-call]
    return error


def _kind(model: str) -> Literal["detect", "segment"]:
    return "segment" if "sam-3" in model else "detect"


fal_handler = FalLiteLLM()
