"""A provider budget held across two `gateway up` processes sharing one Redis: together they
never send the provider more than the budget allows."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_process import gateway_up
from provider_setup import emulator_env, write_config

from emulators.testing import EmulatorHandle
from services import RedisServer

MASTER_KEY = "sk-gw-budget-processes-key"
RPM, BURST, REQUESTS = 600, 2, 40
# The stamps are arrival times at the emulator, not grant times: a request granted at the end
# of one window may arrive in the next after its process was descheduled. On a loaded 2-core
# machine that delay stays under this, which widens the window the budget is held to.
ARRIVAL_JITTER_S = 0.25


def _max_in_window(stamps: list[float], window_s: float) -> int:
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def _config(folder: Path, namespace: str) -> Path:
    def budgeted(data: dict[str, Any]) -> None:
        data["gateway_settings"]["budgets"] = {
            "namespace": namespace,
            "limits": [{"provider": "anthropic", "rpm": RPM, "burst": BURST}],
        }

    folder.mkdir()
    return write_config(folder / "litellm_config.yaml", budgeted)


async def _fire(url: str, count: int, tag: str) -> list[httpx.Response]:
    body = {"model": "captioning", "max_tokens": 20}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/v1/chat/completions",
                    json={**body, "messages": [{"role": "user", "content": f"{tag} {i}"}]},
                )
                for i in range(count)
            )
        )


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_two_proxies_share_one_budget_through_redis(
    tmp_path: Path, redis_server: RedisServer, emulators: dict[str, EmulatorHandle]
) -> None:
    """40 requests fired at two proxies at once, under 600 rpm with burst 2 held in Redis:
    all served by the primary, never more than the budget plus burst in any window."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"]),
        "REDIS_URL": redis_server.url,
    }
    with ExitStack() as stack:
        proxies = [
            stack.enter_context(
                gateway_up(_config(tmp_path / f"p{n}", namespace), master_key=MASTER_KEY, env=env)
            )
            for n in range(2)
        ]
        started = time.monotonic()
        answers = await asyncio.gather(
            *(_fire(p.url, REQUESTS // 2, f"proxy {n}") for n, p in enumerate(proxies))
        )
    for proxy in proxies:
        assert f"budgets: Redis at {redis_server.url} (REDIS_URL)" in proxy.lines
    served = [a for batch in answers for a in batch]
    assert [a.status_code for a in served] == [200] * REQUESTS
    assert {a.headers["x-gateway-provider"] for a in served} == {"anthropic"}
    assert any(float(a.headers["x-gateway-queue-ms"]) > 0 for a in served)
    stamps = sorted(t for t in emulators["anthropic"].stats()["timestamps"] if t >= started)
    assert len(stamps) == REQUESTS
    rate = RPM / 60
    for window in (1.0, 3.0):
        assert _max_in_window(stamps, window) <= int(rate * (window + ARRIVAL_JITTER_S)) + BURST
    # The budget really paced them: alone, either proxy would have sent its 20 at once.
    assert stamps[-1] - stamps[0] >= (REQUESTS - BURST) / rate - 0.5
