"""The gateway's own OpenAPI 3.1 document: the routes it serves itself, built once at start-up
and served at `GET /gateway/openapi.json`.

Why it exists: a client (or a fuzzer) needs one machine-readable statement of what the gateway
answers ahead of LiteLLM: chat completions, embeddings, images (generation, multipart edits),
videos, files and fine-tuning for the configured tasks, and the /gateway/v1 key routes. Request
bodies are OpenAI's own request schemas (vendored in `proxy.contract`), with the `model` field
narrowed to the task names the routing table gives each route; every 4xx and 5xx is documented
in OpenAI's error shape.

The document is public, as OpenAPI documents usually are: it holds route shapes and task names,
nothing per user and no key, and a client reads it before it has a key to send.

Modules: `_chat` (which tasks can chat), `_parts` (operations, parameters, answers),
`_schemas` (OpenAI's schemas shaped for the document), `_jobs` (files, fine-tuning, videos),
`_keys` (the key routes).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
import orjson

from proxy.asgi import ASGIApp, Receive, Scope, Send, send_json
from proxy.contract.schema import json_schemas
from proxy.openapi._artifacts import artifact_paths
from proxy.openapi._chat import chat_tasks
from proxy.openapi._jobs import training_paths, video_paths
from proxy.openapi._keys import key_paths
from proxy.openapi._parts import (
    ARRAY,
    COMPONENTS,
    FILE,
    MULTIPART,
    error_schema,
    json_body,
    operation,
    responses,
    shape,
)
from proxy.openapi._schemas import as_unions, task_schema
from proxy.routing import RoutingTable

__all__ = [
    "DOCUMENT_PATH",
    "OpenApiRoute",
    "ServedTasks",
    "build_document",
    "chat_tasks",
    "served_tasks",
]

DOCUMENT_PATH = "/gateway/openapi.json"


class ServedTasks(msgspec.Struct, frozen=True, kw_only=True):
    """The task names each of the gateway's own routes serves (from the routing table and the
    plugins that serve them), whether the key routes are mounted (a gateway database), and
    whether GET /metrics is."""

    chat: Sequence[str] = ()
    embeddings: Sequence[str] = ()
    image_generations: Sequence[str] = ()
    image_edits: Sequence[str] = ()
    fine_tuning: Sequence[str] = ()
    videos: Sequence[str] = ()
    key_routes: bool = False
    metrics: bool = True
    # Whether signed artifact links are served (a signing key is configured).
    artifact_links: bool = False


class _MediaRoutes(Protocol):
    def served_tasks(self, method: str) -> list[str]: ...


class _EmbeddingRoutes(Protocol):
    def served_tasks(self) -> list[str]: ...


def served_tasks(
    routing: RoutingTable,
    media: _MediaRoutes,
    embeddings: _EmbeddingRoutes,
    *,
    config_path: str,
    key_routes: bool,
    artifact_links: bool = False,
) -> ServedTasks:
    """What each route serves, asked of the apps that serve it; chat completions: the tasks
    LiteLLM can chat with (`_chat`), but those of an in-process embeddings model."""
    embedding = embeddings.served_tasks()
    return ServedTasks(
        chat=tuple(t for t in chat_tasks(routing, config_path) if t not in embedding),
        embeddings=tuple(embedding),
        image_generations=tuple(media.served_tasks("parse")),
        image_edits=tuple(media.served_tasks("parse_edit")),
        fine_tuning=tuple(media.served_tasks("parse_training")),
        videos=tuple(media.served_tasks("parse_video")),
        key_routes=key_routes,
        artifact_links=artifact_links,
    )


def _task_paths(
    tasks: ServedTasks, schemas: Mapping[str, Any], components: dict[str, Any]
) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    if tasks.chat:
        body = task_schema(schemas, "CreateChatCompletionRequest", tasks.chat, components)
        ok = {**shape(object="chat.completion", choices=ARRAY), "text/event-stream": {}}
        paths["/v1/chat/completions"] = {
            "post": operation(
                "createChatCompletion",
                "A chat completion for a task, streamed when `stream` is true.",
                body=json_body(body),
                responses=responses(ok),
            )
        }
    if tasks.embeddings:
        body = task_schema(schemas, "CreateEmbeddingRequest", tasks.embeddings, components)
        paths["/v1/embeddings"] = {
            "post": operation(
                "createEmbedding",
                "Embeddings from a self-hosted model.",
                body=json_body(body),
                responses=responses(shape(object="list", data=ARRAY, usage={"type": "object"})),
            )
        }
    if tasks.image_generations:
        body = task_schema(schemas, "CreateImageRequest", tasks.image_generations, components)
        paths["/v1/images/generations"] = {
            "post": operation(
                "createImage",
                "Images for a task.",
                body=json_body(body),
                responses=responses(shape(data=ARRAY)),
            )
        }
    if tasks.image_edits:
        body = task_schema(
            schemas,
            "CreateImageEditRequest",
            tasks.image_edits,
            components,
            # Documented as one file: generators send a union of a file and a list of files
            # as text fields. The route also takes several (`image[]`), as the SDK sends them.
            files={"image": FILE, "mask": FILE},
        )
        paths["/v1/images/edits"] = {
            "post": operation(
                "createImageEdit",
                "An edit of the images sent (multipart), with an optional mask.",
                body={"required": True, "content": {MULTIPART: {"schema": body}}},
            )
        }
    if tasks.fine_tuning:
        paths.update(training_paths(tasks.fine_tuning, schemas, components))
    if tasks.videos:
        paths.update(video_paths(tasks.videos, schemas, components))
    return paths


def build_document(tasks: ServedTasks, schemas: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `tasks`, request bodies from OpenAI's `schemas` (its
    components by name; the ones they refer to travel along, since they may $ref them)."""
    schemas = as_unions(json_schemas(COMPONENTS)) if schemas is None else schemas
    components: dict[str, Any] = {name: copy.deepcopy(s) for name, s in schemas.items()}
    components["ErrorResponse"] = error_schema()
    paths = _task_paths(tasks, schemas, components)
    if tasks.key_routes:
        paths.update(key_paths())
    if tasks.artifact_links:
        paths.update(artifact_paths())
    if tasks.metrics:
        exposition = {"text/plain": {"schema": {"type": "string"}}}
        paths["/metrics"] = {
            "get": operation(
                "getMetrics",
                "Prometheus series (the master key, unless gateway_settings.metrics.auth: none).",
                responses=responses(exposition),
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gateway",
            "version": "1",
            "description": "The routes the gateway serves itself; other OpenAI routes reach "
            "LiteLLM's proxy unchanged.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


class OpenApiRoute:
    """ASGI: `GET /gateway/openapi.json` answers the document (encoded once), unauthenticated;
    everything else goes to `inner`."""

    def __init__(self, inner: ASGIApp, document: Mapping[str, Any]) -> None:
        self._inner = inner
        self._body = orjson.dumps(document)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path == DOCUMENT_PATH and scope["method"] == "GET":
            await send_json(send, 200, self._body, [])
            return
        await self._inner(scope, receive, send)
