"""Client authentication: the master key or a user's gateway key is required on the fast path
and on LiteLLM's own routes, and failures are HTTP 401 with an OpenAI-format body."""

from __future__ import annotations

import httpx
import openai
import pytest
from proxy_support import MASTER_KEY, USER_ID, SeededDatabase, ThreadedProxy

from proxy.auth import Authenticator
from proxy.errors import InvalidApiKeyError

CHAT = {"model": "captioning", "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer sk-wrong-key-123456"}])
def test_chat_without_the_master_key_is_401(proxy: ThreadedProxy, headers: dict[str, str]) -> None:
    """A missing or wrong key on the fast path gets 401 with an OpenAI error body."""
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer sk-wrong-key-123456"}])
def test_litellm_routes_without_the_master_key_are_401(
    proxy: ThreadedProxy, headers: dict[str, str]
) -> None:
    """LiteLLM's own /v1/models answers 401 (not 500/400) through the custom_auth hook."""
    response = httpx.get(f"{proxy.url}/v1/models", headers=headers)
    assert response.status_code == 401
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}


def test_litellm_routes_accept_the_master_key(proxy: ThreadedProxy) -> None:
    """/v1/models with the master key lists the task groups."""
    response = httpx.get(
        f"{proxy.url}/v1/models", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert response.status_code == 200
    assert "captioning" in {m["id"] for m in response.json()["data"]}


def test_openai_sdk_with_a_wrong_key_gets_authentication_error(proxy: ThreadedProxy) -> None:
    """The OpenAI SDK raises AuthenticationError for a wrong gateway key."""
    sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-not-it-000", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="styling", messages=[{"role": "user", "content": "hi"}])


def test_health_routes_need_no_key(proxy: ThreadedProxy) -> None:
    """Liveness and readiness probes answer without credentials."""
    live = httpx.get(f"{proxy.url}/health/liveliness")
    assert live.status_code == 200, live.text
    assert httpx.get(f"{proxy.url}/health/readiness").status_code == 200


async def test_authenticator_accepts_bearer_and_bare_keys() -> None:
    """The same key passes as an Authorization header value or as a bare key."""
    auth = Authenticator("sk-master-abcdef")
    assert (await auth.authenticate("Bearer sk-master-abcdef")).is_admin
    assert (await auth.authenticate("sk-master-abcdef")).user_id is None
    with pytest.raises(InvalidApiKeyError):
        await auth.authenticate("Bearer sk-master-abcdeg")


def test_a_users_gateway_key_is_accepted(
    proxy: ThreadedProxy, key_database: SeededDatabase
) -> None:
    """A gateway key issued to a user passes on the fast path and names that user."""
    headers = {"authorization": f"Bearer {key_database.user_gateway_key}"}
    assert (
        httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=headers).status_code
        == 200
    )
    me = httpx.get(f"{proxy.url}/gateway/v1/me", headers=headers).json()
    assert (me["user_id"], me["role"]) == (USER_ID, "user")


def test_litellm_routes_accept_a_users_gateway_key(
    proxy: ThreadedProxy, key_database: SeededDatabase
) -> None:
    """LiteLLM's own routes accept a gateway key through the custom_auth hook."""
    headers = {"authorization": f"Bearer {key_database.other_gateway_key}"}
    assert httpx.get(f"{proxy.url}/v1/models", headers=headers).status_code == 200


def test_a_made_up_gateway_key_is_401(proxy: ThreadedProxy, key_database: SeededDatabase) -> None:
    """A key shaped like a gateway key but never issued is refused like any wrong key."""
    forged = key_database.user_gateway_key[:-4] + "AAAA"
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert forged not in response.text
