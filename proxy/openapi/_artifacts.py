"""The signed artifact link route in the document (`proxy.artifact_links` serves it).

Why it exists: the route is the gateway's own and takes no gateway key (the signature is the
credential), so it states its own empty security requirement and its query parameters.
"""

from __future__ import annotations

from typing import Any

from artifacts.links import LINK_PATH
from proxy.openapi._parts import operation, param, responses

__all__ = ["artifact_paths"]


def artifact_paths() -> dict[str, Any]:
    parameters = [
        param(
            "artifact_id", "path", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, required=True
        ),
        param("expires", "query", {"type": "string", "pattern": "^[0-9]{1,12}$"}, required=True),
        param("signature", "query", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, required=True),
    ]
    # Whatever type the artifact was stored with (an image, a video, JSON).
    ok = {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}
    path = f"{LINK_PATH}{{artifact_id}}"
    common: dict[str, Any] = {"parameters": parameters, "security": [], "responses": responses(ok)}
    # HEAD is served too but not documented: its errors carry no body (none may follow a
    # HEAD answer), which a document of OpenAI-shaped errors cannot state.
    return {
        path: {
            "get": operation(
                "getArtifact",
                "An artifact's bytes by its signed link (no gateway key; HEAD: headers only).",
                **common,
            )
        }
    }
