"""`gateway keys ...` and `gateway users ...`: clients of the proxy's /gateway/v1 routes.

Why over HTTP: the running proxy owns validation, the key-encryption key and the caches, so
the commands go through the same checks as any client and invalidate every process's cache
the same way. The caller's key comes from GATEWAY_KEY (a user's or admin's gateway key) or
LITELLM_MASTER_KEY (the bootstrap admin); provider keys are read from standard input (or
prompted for), never from the command line, where `ps` would show them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

import httpx

__all__ = ["register"]

_PREFIX = "/gateway/v1"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keys` and `users` commands to the `gateway` parser."""
    keys = sub.add_parser("keys", help="provider keys and gateway keys (via the proxy)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    listing = _command(keys_sub, "list", "list your provider keys (masked), or --system")
    listing.add_argument("--system", action="store_true", help="the system keys (admin)")
    listing.set_defaults(handler=_list)

    setting = _command(keys_sub, "set", "store a provider key read from standard input")
    setting.add_argument("provider")
    setting.add_argument("--system", action="store_true", help="the system key (admin)")
    setting.add_argument("--validate", action="store_true", help="check it with the provider")
    setting.add_argument(
        "--store-invalid", action="store_true", help="store it even when the provider rejects it"
    )
    setting.set_defaults(handler=_set)

    deleting = _command(keys_sub, "delete", "delete a provider key")
    deleting.add_argument("provider")
    deleting.add_argument("--system", action="store_true", help="the system key (admin)")
    deleting.set_defaults(handler=_delete)

    validating = _command(keys_sub, "validate", "ask the provider whether a key is valid")
    validating.add_argument("provider")
    validating.set_defaults(handler=_validate)

    issuing = _command(keys_sub, "issue", "issue a gateway key to a user (admin)")
    issuing.add_argument("user_id")
    issuing.set_defaults(handler=_issue)

    revoking = _command(keys_sub, "revoke", "revoke a gateway key by its id (admin)")
    revoking.add_argument("key_id")
    revoking.set_defaults(handler=_revoke)

    gateway_keys = _command(keys_sub, "gateway-keys", "list gateway keys (admin)")
    gateway_keys.add_argument("--user", dest="user_id")
    gateway_keys.set_defaults(handler=_gateway_keys)

    reseal = _command(keys_sub, "reseal", "re-seal stored keys under the first encryption key")
    reseal.set_defaults(handler=_reseal)

    new_kek = keys_sub.add_parser("new-kek", help="print a new key-encryption key")
    new_kek.set_defaults(handler=_new_kek)

    users = sub.add_parser("users", help="gateway users (via the proxy, admin)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    adding = _command(users_sub, "add", "create a user")
    adding.add_argument("user_id")
    adding.add_argument("--admin", action="store_true", help="with the admin role")
    adding.set_defaults(handler=_add_user)
    _command(users_sub, "list", "list users").set_defaults(handler=_list_users)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument(
        "--url",
        default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:4000"),
        help="the proxy (default: GATEWAY_URL or http://127.0.0.1:4000)",
    )
    parser.add_argument("--as-user", help="admin only: act for this user (logged)")
    return parser


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    key = os.environ.get("GATEWAY_KEY") or os.environ.get("LITELLM_MASTER_KEY")
    if not key:
        print("set GATEWAY_KEY (your gateway key) or LITELLM_MASTER_KEY", file=sys.stderr)
        return 2
    headers = {"authorization": f"Bearer {key}"}
    if getattr(args, "as_user", None):
        headers["x-gateway-user"] = args.as_user
    try:
        response = httpx.request(
            method, args.url.rstrip("/") + _PREFIX + path, headers=headers, json=body, timeout=30
        )
    except httpx.HTTPError as exc:
        print(
            f"gateway: cannot reach the proxy at {args.url}: {type(exc).__name__}", file=sys.stderr
        )
        return 1
    try:
        data = response.json()
    except ValueError:
        data = {"error": {"message": response.text[:500], "code": None}}
    if response.is_success:
        print(json.dumps(data, indent=2))
        return 0
    error = data.get("error", {}) if isinstance(data, dict) else {}
    print(
        f"gateway: {response.status_code} {error.get('code')}: {error.get('message')}",
        file=sys.stderr,
    )
    return 1


def _read_key(provider: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{provider} key: ")
    return sys.stdin.read().strip()


def _owner_path(args: argparse.Namespace) -> str:
    return "/system-keys" if getattr(args, "system", False) else "/keys"


def _list(args: argparse.Namespace) -> int:
    return _call(args, "GET", _owner_path(args))


def _set(args: argparse.Namespace) -> int:
    body = {
        "key": _read_key(args.provider),
        "validate": args.validate,
        "store_invalid": args.store_invalid,
    }
    return _call(args, "PUT", f"{_owner_path(args)}/{args.provider}", body)


def _delete(args: argparse.Namespace) -> int:
    return _call(args, "DELETE", f"{_owner_path(args)}/{args.provider}")


def _validate(args: argparse.Namespace) -> int:
    body = {"key": _read_key(args.provider)}
    return _call(args, "POST", f"/keys/{args.provider}/validate", body)


def _issue(args: argparse.Namespace) -> int:
    return _call(args, "POST", f"/users/{args.user_id}/gateway-keys")


def _revoke(args: argparse.Namespace) -> int:
    return _call(args, "DELETE", f"/gateway-keys/{args.key_id}")


def _gateway_keys(args: argparse.Namespace) -> int:
    query = f"?user_id={args.user_id}" if args.user_id else ""
    return _call(args, "GET", f"/gateway-keys{query}")


def _reseal(args: argparse.Namespace) -> int:
    return _call(args, "POST", "/encryption/reseal")


def _new_kek(args: argparse.Namespace) -> int:
    from database import Sealer  # noqa: PLC0415 - only this command needs cryptography

    print(Sealer.generate())
    return 0


def _add_user(args: argparse.Namespace) -> int:
    body = {"user_id": args.user_id, "role": "admin" if args.admin else "user"}
    return _call(args, "POST", "/users", body)


def _list_users(args: argparse.Namespace) -> int:
    return _call(args, "GET", "/users")
