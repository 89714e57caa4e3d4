"""No secret leaves a consumer: a proxy echoing the key it was sent puts that key into no
published result, dead letter or log line."""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from consumer_support import CODEC, TopicReader, fast_settings, produce, request
from proxy_stub import Answer, serving

from consumers import ProxyCompletionHandler
from schemas import CompletionFailed

# Shaped like no provider key, so only the redactor's knowledge of it can mask it.
KEY = "plain-consumer-proxy-key-4a7b2e"


def _echoing_proxy(sent: list[str]) -> Answer:
    """A proxy refusing every request with a 401 that repeats the bearer key it received."""

    def answer(req: httpx.Request) -> httpx.Response:
        key = req.headers["authorization"].removeprefix("Bearer ")
        sent.append(key)
        return httpx.Response(
            401, json={"error": {"message": f"Incorrect API key provided: {key}"}}
        )

    return answer


async def test_a_proxy_echoing_the_key_leaks_it_into_no_event_or_log(
    event_broker: Any, start_service: Any
) -> None:
    """The failure is published (result and dead letter) with the echoed key masked."""
    settings = fast_settings(event_broker, partitions=1)
    sent: list[str] = []
    event = request("hello")
    servers = event_broker.bootstrap_servers
    async with serving(_echoing_proxy(sent)) as url:
        handler = ProxyCompletionHandler(url, api_key=KEY)
        with structlog.testing.capture_logs() as logs:
            await start_service(settings, handler)
            await produce(servers, settings.topics.requests.name, [event])
            async with (
                TopicReader(servers, settings.topics.results.name) as results,
                TopicReader(servers, settings.topics.dead_letters.name) as letters,
            ):
                await results.until(lambda rd: len(rd.records) >= 1)
                await letters.until(lambda rd: len(rd.records) >= 1)
    assert sent == [KEY]
    (failed,) = results.results()
    assert isinstance(failed, CompletionFailed)
    assert failed.error.message.endswith("Incorrect API key provided: [REDACTED]")
    (letter,) = [CODEC.decode_dead_letter(rec.value) for rec in letters.records]
    assert letter.reason == "handler_failed"
    assert "[REDACTED]" in letter.error_chain[0].message
    published = [(rec.value, rec.headers) for rec in (*results.records, *letters.records)]
    assert KEY not in repr(published)
    assert KEY not in repr(logs)
