"""Keys and identities over HTTP, with two users and an admin, on SQLite and PostgreSQL: the
resolution order at each level (the emulator records which key each request carried), change
propagation across two proxy processes, isolation, masking, validation and every bad input."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from keys_support import FAKE_KEYS, MASTER_KEY, Stack, chat, dump, store_version

from emulators.http.runtime import key_fingerprint
from emulators.testing import EmulatorHandle

ENV_ANTHROPIC = FAKE_KEYS["ANTHROPIC_API_KEY"]


def _keys_seen(emulator: EmulatorHandle) -> dict[str, int]:
    seen: dict[str, int] = emulator.stats()["by_key"]
    return seen


def _eventually(check: Callable[[], bool], *, within_s: float = 15.0) -> bool:
    """Poll `check` until it holds (True) or `within_s` passes (False)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_resolution_order_user_then_system_then_environment(
    stack: Stack, emulators: dict[str, EmulatorHandle]
) -> None:
    """Alice's own key, else the admin's system key, else the environment key serves."""
    alice, bob = stack.person("alice"), stack.person("bob")
    own, system = stack.provider_key("alice-own"), stack.provider_key("system")
    anthropic = emulators["anthropic"]
    with stack.client(alice.gateway_key) as a, stack.client(bob.gateway_key) as b:
        with stack.admin() as admin:
            assert admin.put("/gateway/v1/system-keys/anthropic", json={"key": system}).is_success
        assert a.put("/gateway/v1/keys/anthropic", json={"key": own}).is_success
        try:
            assert chat(a, "alice, level 1").status_code == 200
            assert _keys_seen(anthropic) == {key_fingerprint(own): 1}
            anthropic.reset()
            assert chat(b, "bob, level 2").status_code == 200
            assert _keys_seen(anthropic) == {key_fingerprint(system): 1}
        finally:
            with stack.admin() as admin:
                assert admin.delete("/gateway/v1/system-keys/anthropic").is_success
        anthropic.reset()
        assert chat(b, "bob, level 3").status_code == 200
        assert _keys_seen(anthropic) == {key_fingerprint(ENV_ANTHROPIC): 1}
        assert a.delete("/gateway/v1/keys/anthropic").is_success
        anthropic.reset()
        assert chat(a, "alice, level 3").status_code == 200
        assert _keys_seen(anthropic) == {key_fingerprint(ENV_ANTHROPIC): 1}


def test_a_key_changed_through_one_process_serves_in_the_other(
    stack: Stack, emulators: dict[str, EmulatorHandle]
) -> None:
    """Process B drops its cached key when process A stores a new one."""
    alice = stack.person("alice")
    first, second = stack.provider_key("first"), stack.provider_key("second")
    anthropic = emulators["anthropic"]
    with (
        stack.client(alice.gateway_key) as via_a,
        stack.client(alice.gateway_key, process="b") as via_b,
    ):
        assert via_a.put("/gateway/v1/keys/anthropic", json={"key": first}).is_success
        assert _eventually(
            lambda: (
                chat(via_b, "cross 1").status_code == 200
                and key_fingerprint(first) in _keys_seen(anthropic)
            )
        )
        assert via_a.put("/gateway/v1/keys/anthropic", json={"key": second}).is_success
        assert _eventually(
            lambda: (
                chat(via_b, "cross 2").status_code == 200
                and key_fingerprint(second) in _keys_seen(anthropic)
            )
        )


def test_a_key_revoked_through_one_process_is_refused_by_the_other(stack: Stack) -> None:
    """A gateway key revoked on process A stops working on process B, which had accepted it."""
    bob = stack.person("bob")
    with stack.client(bob.gateway_key, process="b") as via_b:
        assert via_b.get("/gateway/v1/me").status_code == 200
        with stack.admin() as admin:
            assert admin.delete(f"/gateway/v1/gateway-keys/{bob.key_id}").is_success
        assert _eventually(lambda: via_b.get("/gateway/v1/me").status_code == 401)
        refused = chat(via_b, "revoked")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


def test_one_users_key_never_serves_or_shows_to_another(
    stack: Stack, emulators: dict[str, EmulatorHandle]
) -> None:
    """Bob's requests never carry Alice's key, and Bob cannot list, read or delete it."""
    alice, bob = stack.person("alice"), stack.person("bob")
    own = stack.provider_key("isolated")
    with stack.client(alice.gateway_key) as a, stack.client(bob.gateway_key) as b:
        assert a.put("/gateway/v1/keys/anthropic", json={"key": own}).is_success
        assert chat(b, "bob's request").status_code == 200
        assert key_fingerprint(own) not in _keys_seen(emulators["anthropic"])
        assert b.get("/gateway/v1/keys").json()["keys"] == []
        acting = b.get("/gateway/v1/keys", headers={"x-gateway-user": alice.user_id})
        assert acting.status_code == 403
        assert b.delete("/gateway/v1/keys/anthropic").status_code == 404
        assert [k["provider"] for k in a.get("/gateway/v1/keys").json()["keys"]] == ["anthropic"]


def test_an_error_never_carries_the_users_key(
    stack: Stack, emulators: dict[str, EmulatorHandle]
) -> None:
    """When every provider rejects the request, the error body holds no stored key."""
    alice = stack.person("alice")
    own = stack.provider_key("in-error")
    with stack.client(alice.gateway_key) as a:
        assert a.put("/gateway/v1/keys/anthropic", json={"key": own}).is_success
        for handle in emulators.values():
            handle.set_fault("401")
        failed = chat(a, "every provider refuses")
    assert failed.status_code >= 400
    assert own not in failed.text
    assert key_fingerprint(own) in _keys_seen(emulators["anthropic"])


def test_listings_show_only_a_masked_tail(stack: Stack) -> None:
    """A user's and the system's listings show the provider and '****' plus four characters."""
    alice = stack.person("alice")
    own, system = stack.provider_key("listed"), stack.provider_key("listed-system")
    with stack.client(alice.gateway_key) as a, stack.admin() as admin:
        assert a.put("/gateway/v1/keys/openai", json={"key": own}).is_success
        assert admin.put("/gateway/v1/system-keys/fal", json={"key": system}).is_success
        mine = a.get("/gateway/v1/keys")
        systems = admin.get("/gateway/v1/system-keys")
        assert admin.delete("/gateway/v1/system-keys/fal").is_success
    assert [(k["provider"], k["key"]) for k in mine.json()["keys"]] == [
        ("openai", f"****{own[-4:]}")
    ]
    assert ("fal", f"****{system[-4:]}") in [
        (k["provider"], k["key"]) for k in systems.json()["keys"]
    ]
    assert own not in mine.text
    assert system not in systems.text


def test_validate_reports_valid_and_invalid_keys(
    stack: Stack, emulators: dict[str, EmulatorHandle]
) -> None:
    """Validation asks the provider: the emulator's accepted key is valid, another is not."""
    good, bad = stack.provider_key("good"), stack.provider_key("bad")
    for handle in emulators.values():
        handle.configure(allowed_keys=[good])
    alice = stack.person("alice")
    with stack.client(alice.gateway_key) as a:
        for provider in ("anthropic", "openai", "gemini"):
            verdicts = [
                a.post(f"/gateway/v1/keys/{provider}/validate", json={"key": k}).json()["status"]
                for k in (good, bad)
            ]
            assert verdicts == ["valid", "invalid"], provider


def test_an_invalid_key_is_stored_only_when_asked(
    stack: Stack, emulators: dict[str, EmulatorHandle]
) -> None:
    """Setting a key with validation refuses an invalid one (422), unless store_invalid."""
    bad = stack.provider_key("rejected")
    emulators["anthropic"].configure(allowed_keys=["only-this-one"])
    alice = stack.person("alice")
    with stack.client(alice.gateway_key) as a:
        refused = a.put("/gateway/v1/keys/anthropic", json={"key": bad, "validate": True})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_provider_key"
        assert a.get("/gateway/v1/keys").json()["keys"] == []
        forced = a.put(
            "/gateway/v1/keys/anthropic",
            json={"key": bad, "validate": True, "store_invalid": True},
        )
        assert forced.json()["validation"] == "invalid"
        assert len(a.get("/gateway/v1/keys").json()["keys"]) == 1


_BAD_INPUTS = {
    "unknown provider": (
        "user",
        "PUT",
        "/gateway/v1/keys/nosuch",
        {"json": {"key": "k" * 20}},
        404,
        "unknown_provider",
    ),
    "empty key": (
        "user",
        "PUT",
        "/gateway/v1/keys/openai",
        {"json": {"key": "  "}},
        400,
        "empty_key",
    ),
    "missing key": ("user", "PUT", "/gateway/v1/keys/openai", {"json": {}}, 400, "empty_key"),
    "oversized key": (
        "user",
        "PUT",
        "/gateway/v1/keys/openai",
        {"json": {"key": "k" * 16_385}},
        400,
        "key_too_long",
    ),
    "malformed JSON": (
        "user",
        "PUT",
        "/gateway/v1/keys/openai",
        {"content": b"{not json"},
        400,
        "invalid_json",
    ),
    "JSON not an object": (
        "user",
        "PUT",
        "/gateway/v1/keys/openai",
        {"json": ["k"]},
        400,
        "invalid_json",
    ),
    "user on admin route": (
        "user",
        "POST",
        "/gateway/v1/users",
        {"json": {"user_id": "mallory"}},
        403,
        "forbidden",
    ),
    "user sets system key": (
        "user",
        "PUT",
        "/gateway/v1/system-keys/openai",
        {"json": {"key": "k" * 20}},
        403,
        "forbidden",
    ),
    "user issues a key": (
        "user",
        "POST",
        "/gateway/v1/users/admin/gateway-keys",
        {},
        403,
        "forbidden",
    ),
    "user reseals": ("user", "POST", "/gateway/v1/encryption/reseal", {}, 403, "forbidden"),
    "revoked gateway key": (
        "revoked",
        "PUT",
        "/gateway/v1/keys/openai",
        {"json": {"key": "k" * 20}},
        401,
        "invalid_api_key",
    ),
    "unknown gateway key": (
        "unknown",
        "PUT",
        "/gateway/v1/keys/openai",
        {"json": {"key": "k" * 20}},
        401,
        "invalid_api_key",
    ),
    "no gateway key": ("none", "GET", "/gateway/v1/keys", {}, 401, "invalid_api_key"),
    "invalid user id": (
        "admin",
        "POST",
        "/gateway/v1/users",
        {"json": {"user_id": "no spaces"}},
        400,
        "invalid_user_id",
    ),
    "invalid role": (
        "admin",
        "POST",
        "/gateway/v1/users",
        {"json": {"user_id": "x1", "role": "root"}},
        400,
        "invalid_role",
    ),
    "key for an unknown user": (
        "admin",
        "POST",
        "/gateway/v1/users/nobody-here/gateway-keys",
        {},
        404,
        "not_found",
    ),
    "revoke an unknown key": (
        "admin",
        "DELETE",
        "/gateway/v1/gateway-keys/000000000000",
        {},
        404,
        "not_found",
    ),
    "master key has no user": (
        "admin",
        "PUT",
        "/gateway/v1/keys/openai",
        {"json": {"key": "k" * 20}},
        400,
        "no_user",
    ),
}


@pytest.mark.parametrize("case", list(_BAD_INPUTS), ids=list(_BAD_INPUTS))
def test_bad_input_is_a_precise_4xx_and_changes_nothing(stack: Stack, case: str) -> None:
    """Each bad input gets its own status and code, and the store's change counter stays."""
    caller, method, path, body, status, code = _BAD_INPUTS[case]
    user = stack.person("caller")
    with stack.admin() as admin:
        revoked = stack.person("revoked")
        assert admin.delete(f"/gateway/v1/gateway-keys/{revoked.key_id}").is_success
    keys = {
        "user": user.gateway_key,
        "revoked": revoked.gateway_key,
        "unknown": user.gateway_key[:-6] + "ZZZZZZ",
        "admin": MASTER_KEY,
    }
    before = store_version(stack.database_url)
    headers = {"authorization": f"Bearer {keys[caller]}"} if caller in keys else {}
    response = httpx.request(method, stack.a.url + path, headers=headers, timeout=30, **body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert store_version(stack.database_url) == before


def test_admin_manages_users_and_gateway_keys(stack: Stack) -> None:
    """An admin creates a user (once), issues keys, lists them and revokes one."""
    carol = stack.person("carol")
    with stack.admin() as admin:
        again = admin.post("/gateway/v1/users", json={"user_id": carol.user_id})
        assert (again.status_code, again.json()["error"]["code"]) == (409, "already_exists")
        second = admin.post(f"/gateway/v1/users/{carol.user_id}/gateway-keys").json()
        stack.secrets.append(second["key"])
        assert admin.delete(f"/gateway/v1/gateway-keys/{carol.key_id}").is_success
        listed = admin.get("/gateway/v1/gateway-keys", params={"user_id": carol.user_id}).json()
        assert carol.user_id in [
            u["user_id"] for u in admin.get("/gateway/v1/users").json()["users"]
        ]
    assert {(k["key_id"], k["revoked"]) for k in listed["gateway_keys"]} == {
        (carol.key_id, True),
        (second["key_id"], False),
    }
    assert carol.gateway_key not in str(listed)
    with stack.client(second["key"]) as c:
        assert c.get("/gateway/v1/me").json()["user_id"] == carol.user_id


def test_an_admin_user_may_use_admin_routes(stack: Stack) -> None:
    """A user created with the admin role manages users with their own gateway key."""
    dana = stack.person("dana", role="admin")
    with stack.client(dana.gateway_key) as d:
        created = d.post("/gateway/v1/users", json={"user_id": f"{dana.user_id}-report"})
    assert created.status_code == 201


def test_reseal_keeps_every_key_usable(stack: Stack, emulators: dict[str, EmulatorHandle]) -> None:
    """After an admin re-seals the stored keys, a process reading them afresh still opens them."""
    alice = stack.person("alice")
    own = stack.provider_key("resealed")
    with stack.client(alice.gateway_key) as a, stack.admin() as admin:
        assert a.put("/gateway/v1/keys/anthropic", json={"key": own}).is_success
        resealed = admin.post("/gateway/v1/encryption/reseal")
        assert resealed.status_code == 200
        assert resealed.json()["resealed"] >= 1
    # Process B never read Alice's key before: it opens the re-sealed token now.
    with stack.client(alice.gateway_key, process="b") as via_b:
        assert chat(via_b, "after reseal").status_code == 200
    assert key_fingerprint(own) in _keys_seen(emulators["anthropic"])


def test_the_database_holds_no_plaintext_key(stack: Stack) -> None:
    """Read directly, the database holds neither a provider key nor a gateway key in plain."""
    alice = stack.person("alice")
    own = stack.provider_key("at-rest")
    with stack.client(alice.gateway_key) as a:
        assert a.put("/gateway/v1/keys/anthropic", json={"key": own}).is_success
    values = dump(stack.database_url)
    assert len(values) > 10  # the dump did read the tables
    for secret in stack.secrets:
        assert not [v for v in values if secret in v or secret[8:-4] in v]


def test_no_log_line_carries_a_key(stack: Stack) -> None:
    """Neither proxy process logged any provider or gateway key the tests gave it."""
    logs = stack.a.log.read_text() + stack.b.log.read_text()
    assert "chat_completion_served" in logs  # the logs are the real ones
    assert len(stack.secrets) > 5
    assert [s for s in stack.secrets if s in logs] == []
