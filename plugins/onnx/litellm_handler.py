"""The self-hosted models inside LiteLLM: a CustomLLM for `litellm_settings.custom_provider_map`.

Why it exists: the face-detection and segmentation tasks are chat tasks (the image in the last
user message, a JSON answer), served by the gateway's fast path through `litellm.acompletion`,
which hands `onnx/...` models here; naming `onnx/blazeface-full-range` instead of a Fal model in
litellm_config.yaml is then the whole switch, and the client gets the same JSON. `aembedding`
serves `onnx/` embedding models under stock `litellm --config` (the gateway's own
`/v1/embeddings` route is faster and serves them there).

LiteLLM builds this handler when it imports the module and gives it neither a lifecycle nor the
config, so the models are loaded on first use, from the config file LiteLLM's proxy itself is
told about (`CONFIG_FILE_PATH`, which the gateway sets; else the default models directory), and
belong to the event loop that first used them. Imported by LiteLLM only.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import Choices, EmbeddingResponse, Message, ModelResponse, Usage

from artifacts import GuardedFetcher
from plugins.onnx.errors import OnnxBadInput, OnnxError
from plugins.onnx.images import decode_image, fetch_image, image_fetcher
from plugins.onnx.provider import OnnxModels, model_name
from plugins.onnx.settings import DEFAULT_MODELS_DIR, OnnxSettings
from plugins.onnx.vision import faces_answer, masks_answer

__all__ = ["OnnxLiteLLM", "last_user_image", "onnx_handler"]


def last_user_image(messages: Sequence[Any]) -> tuple[str, str]:
    """The last user message's text and image URL (the vision tasks' request shape)."""
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        texts: list[str] = []
        image: Any = None
        for part in content if isinstance(content, list) else ():
            if isinstance(part, Mapping) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, Mapping) and part.get("type") == "image_url":
                url = part.get("image_url")
                image = url.get("url") if isinstance(url, Mapping) else url
        if isinstance(image, str) and image:
            return " ".join(texts).strip(), image
        break
    raise OnnxBadInput("the last user message needs an image_url part", param="messages")


class OnnxLiteLLM(CustomLLM):
    """`acompletion` for the vision tasks and `aembedding`, on the models of this process."""

    def __init__(self, models: OnnxModels | None = None) -> None:
        super().__init__()
        self._given = models
        self._models: OnnxModels | None = models
        self._loop: asyncio.AbstractEventLoop | None = None
        # Built for the settings of the models it was made with (a config reload makes both).
        self._fetcher: tuple[OnnxModels, GuardedFetcher] | None = None

    def _current(self) -> OnnxModels:
        loop = asyncio.get_running_loop()
        if self._given is not None:
            return self._given
        if self._models is None or self._loop is not loop:
            config = os.environ.get("CONFIG_FILE_PATH")
            self._models = (
                OnnxModels.from_config(config)
                if config
                else OnnxModels(OnnxSettings(), Path.cwd() / DEFAULT_MODELS_DIR)
            )
            self._loop = loop
        return self._models

    def _fetcher_of(self, models: OnnxModels) -> GuardedFetcher:
        if self._fetcher is None or self._fetcher[0] is not models:
            self._fetcher = (models, image_fetcher(models.settings.fetch_allow))
        return self._fetcher[1]

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
        try:
            answer = await self.analyse(model, messages)
        except OnnxError as exc:
            raise _error(exc) from exc
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

    async def analyse(self, model: str, messages: Sequence[Any]) -> dict[str, Any]:
        """The vision task's JSON answer for the image in the last user message."""
        models = self._current()
        name = model_name(model)
        _, url = last_user_image(messages)
        kind = _kind(models.task_of(name), name)
        data = await fetch_image(url, self._fetcher_of(models))
        runner = await models.image_model(name, kind)
        decoded = await asyncio.to_thread(
            decode_image, data, param="messages", at_least=runner.input_side
        )
        result = await runner.infer(decoded.image, decoded.size)
        width, height = decoded.size
        if kind == "face-detection":
            return faces_answer(result, width, height)
        return masks_answer(result, width, height)

    async def aembedding(  # noqa: PLR0917 - LiteLLM calls it with this signature
        self,
        model: str,
        input: list[Any],
        model_response: EmbeddingResponse,
        print_verbose: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: Any = None,  # noqa: ASYNC109 - LiteLLM passes it; the caller's deadline rules
        litellm_params: Any = None,
    ) -> EmbeddingResponse:
        texts = [input] if isinstance(input, str) else list(input)
        try:
            if not all(isinstance(t, str) for t in texts):
                raise OnnxBadInput(
                    "input must be text: token arrays are not supported", param="input"
                )
            embedder = await self._current().embedder(model_name(model))
            result = await embedder.embed(texts)
        except OnnxError as exc:
            raise _error(exc) from exc
        model_response.model = model
        model_response.data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(result.vectors)
        ]
        model_response.usage = Usage(
            prompt_tokens=result.tokens, completion_tokens=0, total_tokens=result.tokens
        )
        return model_response


def _kind(task: str | None, name: str) -> Literal["face-detection", "segmentation"]:
    """The vision task a model serves: its manifest's task, else guessed from its name."""
    if task is None:
        task = "segmentation" if "segment" in name else "face-detection"
    if task not in ("face-detection", "segmentation"):
        raise OnnxBadInput(f"model {name!r} serves {task}, not a vision chat task", param="model")
    return "segmentation" if task == "segmentation" else "face-detection"


def _error(exc: OnnxError) -> Exception:
    """LiteLLM's error for a custom provider (it maps the status to its own classes)."""
    error: Exception = CustomLLMError(status_code=exc.status_code, message=exc.message)  # type: ignore[no-untyped-call]
    return error


onnx_handler = OnnxLiteLLM()
