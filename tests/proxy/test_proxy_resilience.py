"""The retry/fallback policy in isolation: backoff schedule, Retry-After, ordering, deadlines,
cancellation and the worst case it allows."""

from __future__ import annotations

import asyncio

import pytest

from proxy.errors import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    ExternalServiceError,
    InvalidApiKeyError,
    RateLimitError,
    ServiceUnavailableError,
)
from proxy.keys import KeyResolver
from proxy.resilience import Resilience, chain_bound
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


class Sleeps:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _resilience(sleep: Sleeps | None = None) -> Resilience:
    return Resilience(SETTINGS, KEYS, sleep=sleep or Sleeps())


async def test_transient_errors_are_retried_on_the_same_provider() -> None:
    """Two 503s then success: three calls to the primary, each with its key."""
    script = Script(anthropic=[ServiceUnavailableError("x"), ServiceUnavailableError("y")])
    outcome = await _resilience().run(ROUTE, None, script)
    assert outcome.value == "served by anthropic"
    assert outcome.attempts == 3
    assert script.calls == [("anthropic", "key-anthropic")] * 3


async def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    """With five attempts the waits are 1, 2, 4 and 8 s; the cap (10 s) then holds."""
    settings = ResilienceSettings(attempts=6, backoff_base_s=1, backoff_max_s=10)
    sleeps = Sleeps()
    script = Script(anthropic=[ServiceUnavailableError("x")] * 5)
    await Resilience(settings, KEYS, sleep=sleeps).run(ROUTE, None, script)
    assert sleeps.delays == [1, 2, 4, 8, 10]


async def test_retry_after_replaces_the_backoff() -> None:
    """A provider's Retry-After within the limit is the wait; without one the backoff is."""
    sleeps = Sleeps()
    script = Script(anthropic=[ServiceUnavailableError("x"), RateLimitError("y", retry_after_s=5)])
    await _resilience(sleeps).run(ROUTE, None, script)
    assert sleeps.delays == [1, 5]


async def test_retry_after_beyond_the_limit_moves_to_the_fallback_at_once() -> None:
    """A Retry-After above max_retry_after_s ends retries on that provider without waiting."""
    sleeps = Sleeps()
    script = Script(anthropic=[RateLimitError("out", retry_after_s=31)])
    outcome = await _resilience(sleeps).run(ROUTE, None, script)
    assert outcome.deployment.provider == "gemini"
    assert sleeps.delays == []


async def test_authentication_failure_falls_back_without_retry() -> None:
    """A 401 from the primary moves straight to the fallback."""
    script = Script(anthropic=[AuthenticationError("bad key")])
    outcome = await _resilience().run(ROUTE, None, script)
    assert outcome.deployment.provider == "gemini"
    assert outcome.fallback
    assert [c[0] for c in script.calls] == ["anthropic", "gemini"]


@pytest.mark.parametrize(
    "error", [BadRequestError("bad"), InvalidApiKeyError("wrong gateway key")], ids=type
)
async def test_errors_about_the_caller_are_raised_without_retry_or_fallback(
    error: ExternalServiceError,
) -> None:
    """A 400 or a wrong gateway key is the caller's problem: raised at once, nothing else."""
    script = Script(anthropic=[error])
    with pytest.raises(type(error)):
        await _resilience().run(ROUTE, None, script)
    assert [c[0] for c in script.calls] == ["anthropic"]


async def test_exhausted_route_reports_every_provider() -> None:
    """When all fail, the error carries each provider with its attempt count."""
    script = Script(anthropic=[ServiceUnavailableError("a")] * 3, gemini=[AuthenticationError("b")])
    with pytest.raises(AllProvidersFailedError) as caught:
        await _resilience().run(ROUTE, None, script)
    assert type(caught.value) is AllProvidersFailedError
    assert [(f.provider, f.attempts) for f in caught.value.failures] == [
        ("anthropic", 3),
        ("gemini", 1),
    ]


async def test_worst_case_is_attempts_times_providers() -> None:
    """Every provider failing retriably costs exactly chain_bound(...).calls calls."""
    route = TaskRoute(task="video", deployments=(_dep("anthropic"), _dep("openai"), _dep("gemini")))
    keys = KeyResolver(
        {f"{p.upper()}_API_KEY": f"key-{p}" for p in ("anthropic", "openai", "gemini")}
    )
    script = Script(
        **{p: [ServiceUnavailableError(p)] * 10 for p in ("anthropic", "openai", "gemini")}
    )
    with pytest.raises(AllProvidersFailedError):
        await Resilience(SETTINGS, keys, sleep=Sleeps()).run(route, None, script)
    bound = chain_bound(SETTINGS, providers=3)
    assert len(script.calls) == bound.calls == 9
    assert bound.seconds == 3 * (3 * 60 + 2 * 30)


async def test_no_retry_is_made_whose_wait_ends_after_the_deadline() -> None:
    """A Retry-After longer than the time left stops the provider; the chain reports the
    deadline although a fallback was still tried."""
    sleeps = Sleeps()
    script = Script(
        anthropic=[RateLimitError("wait", retry_after_s=20)], gemini=[AuthenticationError("x")]
    )
    deadline = asyncio.get_running_loop().time() + 5
    with pytest.raises(DeadlineExceededError):
        await _resilience(sleeps).run(ROUTE, None, script, deadline=deadline)
    assert [c[0] for c in script.calls] == ["anthropic", "gemini"]
    assert sleeps.delays == []


async def test_the_deadline_cancels_the_attempt_in_flight_and_starts_nothing_after_it() -> None:
    """A call still running at the deadline is cancelled; neither a retry nor the fallback
    starts, and the error names the attempt made."""
    cancelled = asyncio.Event()
    calls: list[str] = []

    async def hang(deployment: Deployment, _key: str) -> str:
        calls.append(deployment.provider)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    deadline = asyncio.get_running_loop().time() + 0.2
    with pytest.raises(DeadlineExceededError) as caught:
        await _resilience().run(ROUTE, None, hang, deadline=deadline)
    assert cancelled.is_set()
    assert calls == ["anthropic"]
    assert [(f.provider, f.attempts) for f in caught.value.failures] == [("anthropic", 1)]


async def test_a_passed_deadline_makes_no_call() -> None:
    """A request whose deadline has already passed is answered without calling anyone."""
    script = Script()
    deadline = asyncio.get_running_loop().time() - 1
    with pytest.raises(DeadlineExceededError):
        await _resilience().run(ROUTE, None, script, deadline=deadline)
    assert script.calls == []


async def test_cancelling_the_request_cancels_the_provider_call() -> None:
    """Cancellation (the client went away) reaches the call in flight and is not retried."""
    started = asyncio.Event()
    cancelled = asyncio.Event()
    calls: list[str] = []

    async def hang(deployment: Deployment, _key: str) -> str:
        calls.append(deployment.provider)
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    request = asyncio.create_task(_resilience().run(ROUTE, None, hang))
    await started.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert cancelled.is_set()
    assert calls == ["anthropic"]
