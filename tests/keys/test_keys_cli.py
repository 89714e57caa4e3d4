"""`gateway keys` and `gateway users`: the admin bootstraps with the master key, issues a
user's gateway key, the user manages their own provider key, and refusals exit non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from keys_support import MASTER_KEY, ROOT, Stack

from database import Sealer

# The commands are HTTP clients: one backend suffices, the routes are tested on both.
on_sqlite = pytest.mark.parametrize("stack", ["sqlite"], indirect=True, scope="module")


def _gateway(
    stack: Stack, key: str, *argv: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_KEY": key, "GATEWAY_URL": stack.a.url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@on_sqlite
def test_admin_bootstraps_a_user_who_manages_their_own_key(stack: Stack) -> None:
    """users add, keys issue, then the user's keys set / list / delete, then keys revoke."""
    assert _gateway(stack, MASTER_KEY, "users", "add", "erin-cli").returncode == 0
    issued = _gateway(stack, MASTER_KEY, "keys", "issue", "erin-cli")
    assert issued.returncode == 0, issued.stderr
    erin = json.loads(issued.stdout)
    provider_key = "sk-ant-cli-set-key-0123456789abcdef"
    stack.secrets += [erin["key"], provider_key]
    stored = _gateway(stack, erin["key"], "keys", "set", "anthropic", stdin=provider_key)
    assert stored.returncode == 0, stored.stderr
    listed = _gateway(stack, erin["key"], "keys", "list")
    assert json.loads(listed.stdout)["keys"][0]["key"] == "****cdef"
    assert provider_key not in listed.stdout
    assert _gateway(stack, erin["key"], "keys", "delete", "anthropic").returncode == 0
    assert _gateway(stack, MASTER_KEY, "keys", "revoke", erin["key_id"]).returncode == 0
    refused = _gateway(stack, erin["key"], "keys", "list")
    assert refused.returncode == 1
    assert "401 invalid_api_key" in refused.stderr


@on_sqlite
def test_a_refusal_exits_non_zero_with_the_code(stack: Stack) -> None:
    """An unknown provider is refused by the proxy and the command says so on stderr."""
    done = _gateway(stack, MASTER_KEY, "keys", "set", "nosuch", "--system", stdin="k" * 20)
    assert done.returncode == 1
    assert "404 unknown_provider" in done.stderr


@on_sqlite
def test_a_user_cannot_create_users(stack: Stack) -> None:
    """`gateway users add` with a user's gateway key is refused with 403."""
    user = stack.person("frank")
    done = _gateway(stack, user.gateway_key, "users", "add", "mallory")
    assert done.returncode == 1
    assert "403 forbidden" in done.stderr


def test_new_kek_prints_a_usable_key() -> None:
    """`gateway keys new-kek` prints a key the database's sealer accepts."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "new-kek"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    )
    sealer = Sealer([done.stdout.strip()])
    assert sealer.open(sealer.seal("x")) == "x"
