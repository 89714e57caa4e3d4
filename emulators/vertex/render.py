"""Render Vertex AI answers: Gemini responses with image parts, refusals, try-on predictions.

Why it exists: the text and vision answers are the Gemini emulator's (``emulators.gemini.render``,
the same GenerateContentResponse on both APIs); Vertex image work adds what clients parse
beyond that: ``inlineData`` image parts with image token usage, ``promptFeedback.blockReason``
without candidates, candidates that end with a refusal ``finishReason`` and no content, and
the try-on ``predictions`` list. Pure functions, shared by the unary and the SSE forms.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from emulators.gemini.render import IMAGE_OUTPUT_TOKENS, response, stream_chunks
from emulators.http.content import Reply
from emulators.vertex.safety import Block
from emulators.vertex.wire import GenerateRequest

__all__ = [
    "FORBIDDEN",
    "NOT_FOUND",
    "UNAUTHENTICATED",
    "answer",
    "answer_chunks",
    "finish_blocked",
    "predictions",
    "prompt_blocked",
]

UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
FORBIDDEN = (
    "Permission 'aiplatform.endpoints.predict' denied on resource "
    "'//aiplatform.googleapis.com/projects/{project}/locations/{location}/publishers/google/"
    "models/{model}' (or it may not exist)."
)
NOT_FOUND = (
    "Publisher Model `projects/{project}/locations/{location}/publishers/google/models/{model}` "
    "was not found or your project does not have access to it."
)
_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
_MESSAGES = {
    "IMAGE_SAFETY": "Unable to show the generated image. The image was filtered out because it "
    "violated Google's Generative AI Prohibited Use policy.",
    "NO_IMAGE": "The model did not generate an image.",
}


def _image_tokens(request: GenerateRequest) -> int:
    # Gemini 3 Pro Image bills 1120 tokens for a 1K or 2K image and 2000 for 4K ($120/M).
    if request.model.startswith("gemini-3"):
        return 2000 if request.image_size == "4K" else 1120
    return IMAGE_OUTPUT_TOKENS


def _image_part(data: bytes, mime_type: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime_type, "data": base64.b64encode(data).decode()}}


def _with_images(
    request: GenerateRequest, body: dict[str, Any], images: list[bytes], *, last: bool
) -> dict[str, Any]:
    """``body`` (Gemini's text answer) with the image parts and their usage added."""
    for index, candidate in enumerate(body.get("candidates", [])):
        parts = candidate["content"]["parts"] if request.wants_text else []
        if last and index < len(images):
            parts.append(_image_part(images[index], request.output_mime))
        candidate["content"]["parts"] = parts
    if last and images:
        usage = body["usageMetadata"]
        image_tokens = _image_tokens(request) * len(images)
        text_tokens = usage["candidatesTokenCount"] if request.wants_text else 0
        usage["candidatesTokenCount"] = text_tokens + image_tokens
        usage["totalTokenCount"] = usage["promptTokenCount"] + text_tokens + image_tokens
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image_tokens}]
    return body


def _candidates(body: dict[str, Any], count: int) -> dict[str, Any]:
    first = body["candidates"][0]
    body["candidates"] = [
        {
            **first,
            "content": {**first["content"], "parts": list(first["content"]["parts"])},
            "index": i,
        }
        for i in range(count)
    ]
    return body


def answer(request: GenerateRequest, reply: Reply, images: list[bytes]) -> dict[str, Any]:
    """The unary GenerateContentResponse: Gemini's text answer, plus one image per candidate."""
    conversation = dataclasses.replace(request.conversation, wants_image=False)
    body = _candidates(response(conversation, reply), request.candidate_count)
    return _with_images(request, body, images, last=True) if request.wants_image else body


def answer_chunks(
    request: GenerateRequest, reply: Reply, images: list[bytes]
) -> list[dict[str, Any]]:
    """The streamed form: text deltas, the image in the last chunk."""
    if request.wants_image and not request.wants_text:
        return [answer(request, reply, images)]
    conversation = dataclasses.replace(request.conversation, wants_image=False)
    chunks = stream_chunks(conversation, reply)
    if request.wants_image:
        chunks[-1] = _with_images(request, chunks[-1], images, last=True)
    return chunks


def _ratings(block: Block) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = []
    categories = list(_CATEGORIES)
    if block.category is not None and block.category not in categories:
        categories.append(block.category)
    for category in categories:
        rated = category == block.category
        level = block.level if rated else "NEGLIGIBLE"
        rating: dict[str, Any] = {
            "category": category,
            "probability": level,
            "severity": f"HARM_SEVERITY_{level}",
        }
        if rated:
            rating["blocked"] = True
        ratings.append(rating)
    return ratings


def _envelope(request: GenerateRequest, input_tokens: int) -> dict[str, Any]:
    return {
        "usageMetadata": {"promptTokenCount": input_tokens, "totalTokenCount": input_tokens},
        "modelVersion": request.model,
        "responseId": f"emu{request.conversation.digest()}",
    }


def prompt_blocked(request: GenerateRequest, block: Block, input_tokens: int) -> dict[str, Any]:
    """The prompt was refused: ``promptFeedback`` and no candidates."""
    feedback = {
        "blockReason": block.reason,
        "blockReasonMessage": f"The prompt was blocked ({block.reason}).",
        "safetyRatings": _ratings(block),
    }
    return {"promptFeedback": feedback, **_envelope(request, input_tokens)}


def finish_blocked(request: GenerateRequest, block: Block, input_tokens: int) -> dict[str, Any]:
    """The answer was withheld: one candidate with the refusal's finishReason and no content."""
    candidate = {
        "finishReason": block.reason,
        "finishMessage": _MESSAGES.get(block.reason, f"Generation stopped ({block.reason})."),
        "safetyRatings": _ratings(block),
        "index": 0,
    }
    return {"candidates": [candidate], **_envelope(request, input_tokens)}


def predictions(
    images: list[bytes], mime_type: str, *, filtered: str | None = None, count: int = 0
) -> dict[str, Any]:
    """The try-on answer: one prediction per sample (each replaced by the filter's reason)."""
    if filtered is not None:
        return {"predictions": [{"raiFilteredReason": filtered} for _ in range(count)]}
    return {
        "predictions": [
            {"mimeType": mime_type, "bytesBase64Encoded": base64.b64encode(data).decode()}
            for data in images
        ]
    }
