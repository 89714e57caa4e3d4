"""The retry/fallback policy in isolation: backoff schedule, Retry-After, ordering."""

from __future__ import annotations

import pytest

from proxy.errors import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    ServiceUnavailableError,
)
from proxy.keys import KeyResolver
from proxy.resilience import Resilience, backoff_delay
from proxy.routing import Deployment, TaskRoute
from proxy.settings import ResilienceSettings

SETTINGS = ResilienceSettings(attempts=3, backoff_base_s=1, backoff_max_s=10, max_retry_after_s=30)


def _dep(provider: str) -> Deployment:
    return Deployment(
        group=provider,
        provider=provider,
        model=f"{provider}/model",
        key_env=f"{provider.upper()}_API_KEY",
        literal_key=None,
        params={"model": f"{provider}/model"},
    )


ROUTE = TaskRoute(task="captioning", deployments=(_dep("anthropic"), _dep("gemini")))
KEYS = KeyResolver({"ANTHROPIC_API_KEY": "key-anthropic", "GEMINI_API_KEY": "key-gemini"})


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    """Retries wait 1, 2, 4, 8, then 10 s (the cap) by default."""
    assert [backoff_delay(n, SETTINGS) for n in range(1, 6)] == [1, 2, 4, 8, 10]


def test_retry_after_replaces_the_backoff() -> None:
    """A provider's Retry-After within the limit is the delay."""
    assert backoff_delay(1, SETTINGS, retry_after_s=7) == 7


def test_retry_after_beyond_the_limit_stops_retrying() -> None:
    """A Retry-After above max_retry_after_s ends retries on that provider."""
    assert backoff_delay(1, SETTINGS, retry_after_s=31) is None


class Script:
    """A provider call that raises the scripted errors per provider, then answers."""

    def __init__(self, **errors: list[Exception]) -> None:
        self.errors = errors
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, deployment: Deployment, key: str) -> str:
        self.calls.append((deployment.provider, key))
        pending = self.errors.get(deployment.provider, [])
        if pending:
            raise pending.pop(0)
        return f"served by {deployment.provider}"


async def _no_sleep(_: float) -> None:
    return None


async def test_transient_errors_are_retried_on_the_same_provider() -> None:
    """Two 503s then success: three calls to the primary, each with its key."""
    script = Script(anthropic=[ServiceUnavailableError("x"), ServiceUnavailableError("y")])
    outcome = await Resilience(SETTINGS, KEYS, sleep=_no_sleep).run(ROUTE, None, script)
    assert outcome.value == "served by anthropic"
    assert outcome.attempts == 3
    assert script.calls == [("anthropic", "key-anthropic")] * 3


async def test_backoff_delays_are_slept_between_retries() -> None:
    """The sleeps between attempts follow the schedule, Retry-After included."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    script = Script(anthropic=[ServiceUnavailableError("x"), RateLimitError("y", retry_after_s=5)])
    await Resilience(SETTINGS, KEYS, sleep=sleep).run(ROUTE, None, script)
    assert slept == [1, 5]


async def test_authentication_failure_falls_back_without_retry() -> None:
    """A 401 from the primary moves straight to the fallback."""
    script = Script(anthropic=[AuthenticationError("bad key")])
    outcome = await Resilience(SETTINGS, KEYS, sleep=_no_sleep).run(ROUTE, None, script)
    assert outcome.deployment.provider == "gemini"
    assert outcome.fallback
    assert [c[0] for c in script.calls] == ["anthropic", "gemini"]


async def test_bad_request_is_raised_without_fallback() -> None:
    """A 400 is the client's problem: raised at once, the fallback never called."""
    script = Script(anthropic=[BadRequestError("bad")])
    with pytest.raises(BadRequestError):
        await Resilience(SETTINGS, KEYS, sleep=_no_sleep).run(ROUTE, None, script)
    assert [c[0] for c in script.calls] == ["anthropic"]


async def test_exhausted_route_reports_every_provider() -> None:
    """When all fail, the error carries each provider with its attempt count."""
    script = Script(anthropic=[ServiceUnavailableError("a")] * 3, gemini=[AuthenticationError("b")])
    with pytest.raises(AllProvidersFailedError) as caught:
        await Resilience(SETTINGS, KEYS, sleep=_no_sleep).run(ROUTE, None, script)
    assert [(f.provider, f.attempts) for f in caught.value.failures] == [
        ("anthropic", 3),
        ("gemini", 1),
    ]
