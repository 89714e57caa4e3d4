"""The /gateway/v1 key and identity routes in the document (`proxy.admin` serves them).

Why it exists: these routes are the gateway's own API, not OpenAI's, so their request shapes
are stated here, next to the rules `proxy.admin` applies (user ids, providers, key sizes).
"""

from __future__ import annotations

from typing import Any

from proxy.keys import KEY_PROVIDERS
from proxy.openapi._parts import json_body, operation, param, responses, shape

__all__ = ["key_paths"]

_USER_ID = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"


def key_paths() -> dict[str, Any]:
    provider = param(
        "provider", "path", {"type": "string", "enum": list(KEY_PROVIDERS)}, required=True
    )
    user = param("user_id", "path", {"type": "string", "pattern": _USER_ID}, required=True)
    key_id = param("key_id", "path", {"type": "string", "minLength": 1}, required=True)
    key_body = {
        "type": "object",
        "required": ["key"],
        "properties": {
            "key": {"type": "string", "minLength": 1, "maxLength": 16384},
            "validate": {"type": "boolean"},
            "store_invalid": {"type": "boolean"},
        },
    }
    check_body = {"type": "object", "required": ["key"], "properties": key_body["properties"]}
    new_user = {
        "type": "object",
        "required": ["user_id"],
        "properties": {
            "user_id": {"type": "string", "pattern": _USER_ID},
            "role": {"type": "string", "enum": ["admin", "user"]},
        },
    }
    listed_by = param("user_id", "query", {"type": "string", "pattern": _USER_ID}, required=False)
    p = "/gateway/v1"
    return {
        f"{p}/me": {
            "get": operation(
                "getIdentity",
                "Who the gateway key belongs to.",
                responses=responses(shape(role={"enum": ["admin", "user"]})),
            )
        },
        f"{p}/keys": {"get": operation("listOwnKeys", "The caller's provider keys, masked.")},
        f"{p}/keys/{{provider}}": {
            "put": operation(
                "setOwnKey",
                "Store a provider key.",
                body=json_body(key_body),
                parameters=[provider],
            ),
            "delete": operation("deleteOwnKey", "Delete a provider key.", parameters=[provider]),
        },
        f"{p}/keys/{{provider}}/validate": {
            "post": operation(
                "validateKey",
                "Ask the provider whether a key works, storing nothing.",
                body=json_body(check_body),
                parameters=[provider],
            )
        },
        f"{p}/system-keys": {"get": operation("listSystemKeys", "The system keys, masked.")},
        f"{p}/system-keys/{{provider}}": {
            "put": operation(
                "setSystemKey",
                "Store a system key.",
                body=json_body(key_body),
                parameters=[provider],
            ),
            "delete": operation("deleteSystemKey", "Delete a system key.", parameters=[provider]),
        },
        f"{p}/users": {
            "get": operation("listUsers", "The users."),
            "post": operation(
                "createUser",
                "Create a user.",
                body=json_body(new_user),
                responses=responses(status="201"),
            ),
        },
        f"{p}/users/{{user_id}}/gateway-keys": {
            "post": operation(
                "issueGatewayKey",
                "Issue a gateway key for a user (returned once).",
                parameters=[user],
                responses=responses(status="201"),
            )
        },
        f"{p}/gateway-keys": {
            "get": operation(
                "listGatewayKeys", "Gateway keys, never whole.", parameters=[listed_by]
            )
        },
        f"{p}/gateway-keys/{{key_id}}": {
            "delete": operation("revokeGatewayKey", "Revoke a gateway key.", parameters=[key_id])
        },
        f"{p}/encryption/reseal": {
            "post": operation("resealKeys", "Seal every stored key with the newest key.")
        },
    }
