"""Vertex AI provider plugin: Gemini image generation and multi-image editing (virtual try-on)
through generateContent, and the dedicated virtual try-on model through `:predict`, with the
safety settings of each model group from litellm_config.yaml.

``provider.VertexImages`` is the thin I/O class; ``transforms`` (generation, sizes, answers),
``edits`` (edit forms, model limits, the try-on body) and ``options`` (per-group settings)
hold the pure translations; ``auth`` mints service-account tokens; ``errors`` is the plugin's
error tree and the one place Vertex's answers and transport failures are mapped into it.
"""

from plugins.vertex.auth import TokenCache, load_credential
from plugins.vertex.errors import (
    VertexAuthError,
    VertexBadRequest,
    VertexConfigError,
    VertexContentPolicy,
    VertexCredentialsError,
    VertexError,
    VertexInvalidRequest,
    VertexNotFound,
    VertexProtocolError,
    VertexRateLimited,
    VertexServerError,
    VertexTimeout,
    VertexUnavailable,
)
from plugins.vertex.options import ModelOptions, SafetySetting, parse_model_options
from plugins.vertex.provider import VertexImages, VertexJob
from plugins.vertex.transforms import ImageRequest, InlineImage, parse_image_request

__all__ = [
    "ImageRequest",
    "InlineImage",
    "ModelOptions",
    "SafetySetting",
    "TokenCache",
    "VertexAuthError",
    "VertexBadRequest",
    "VertexConfigError",
    "VertexContentPolicy",
    "VertexCredentialsError",
    "VertexError",
    "VertexImages",
    "VertexInvalidRequest",
    "VertexJob",
    "VertexNotFound",
    "VertexProtocolError",
    "VertexRateLimited",
    "VertexServerError",
    "VertexTimeout",
    "VertexUnavailable",
    "load_credential",
    "parse_image_request",
    "parse_model_options",
]
