"""(b') of bench/kafka_bench.py: one real HTTP round trip per record, runtime against raw loop.

Why a module of its own: the no-op handler of (b) measures a path no real handler takes; every
real handler awaits I/O. Here each record costs one chat-completion call to the project's OpenAI
emulator, run as a separate process (`python -m emulators openai`) so that its CPU is not the
measured process's, through the HTTP client the proxy handler uses. The runtime side is
`ProxyCompletionHandler` itself; the raw side is the loop a developer would write on aiokafka and
that client (`consumers.proxy_client.ProxyClient`, pooled aiohttp): consume, one call per record
with bounded concurrency, produce the result, commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers import ProxyCompletionHandler
from consumers.proxy_client import ProxyClient

__all__ = ["API_KEY", "emulator", "proxy_handler", "raw_http_loop"]

# The emulator accepts any non-empty key by default; a fixed one keeps both sides alike.
API_KEY = "bench-key"


@contextlib.contextmanager
def emulator() -> Iterator[tuple[str, int]]:
    """Base URL and process id of a fresh OpenAI emulator process, stopped after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", "openai", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "openai http://127.0.0.1:PORT" once it serves
        if not line.startswith("openai "):
            raise RuntimeError(f"OpenAI emulator did not start: {line!r}")
        yield line.split()[1], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def proxy_handler(url: str) -> ProxyCompletionHandler:
    """The runtime's side of (b'): the proxy handler, pointed at the emulator."""
    return ProxyCompletionHandler(url, api_key=API_KEY, provider="emulator")


def _client(url: str) -> ProxyClient:
    # The client ProxyCompletionHandler uses (headers, timeout, pool limits), so both sides pay
    # the same HTTP cost and the ratio shows what the runtime adds.
    return ProxyClient(url, api_key=API_KEY)


class _Request(msgspec.Struct):
    """The fields of a completion request the raw loop needs (unknown fields ignored)."""

    event_id: str
    task: str
    messages: list[dict[str, Any]]


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message


class _Answer(msgspec.Struct):
    model: str = ""
    choices: list[_Choice] = msgspec.field(default_factory=list)


class _Result(msgspec.Struct):
    request_id: str
    model: str
    content: str | None


_REQUEST = msgspec.json.Decoder(_Request)
_ANSWER = msgspec.json.Decoder(_Answer)
_ENCODER = msgspec.json.Encoder()


class _Caller:
    """One record's work in the raw loop: decode, call, produce; releases its slot after."""

    def __init__(
        self, client: ProxyClient, producer: AIOKafkaProducer, out: str, slots: Any
    ) -> None:
        self._client = client
        self._producer = producer
        self._out = out
        self._slots = slots

    async def __call__(self, record: Any) -> asyncio.Future[Any]:
        try:
            request = _REQUEST.decode(record.value)
            body = _ENCODER.encode({"model": request.task, "messages": request.messages})
            response = await self._client.request(
                "POST",
                "/v1/chat/completions",
                content=body,
                headers={"x-request-id": request.event_id},
                timeout_s=120.0,
            )
            if response.status >= 300:
                raise RuntimeError(f"the emulator answered {response.status}")
            answer = _ANSWER.decode(response.content)
            result = _Result(
                request_id=request.event_id,
                model=answer.model,
                content=answer.choices[0].message.content,
            )
            sent: asyncio.Future[Any] = await self._producer.send(
                self._out, _ENCODER.encode(result), key=record.key
            )
            return sent
        finally:
            self._slots.release()


_Batch = tuple[dict[Any, int], list[asyncio.Task[asyncio.Future[Any]]]]


async def _settle(consumer: AIOKafkaConsumer, batches: asyncio.Queue[_Batch | None]) -> None:
    """Commit each batch's offsets once its results and every earlier batch's are acked."""
    offsets: dict[Any, int] = {}
    last_commit = time.perf_counter()
    while (batch := await batches.get()) is not None:
        ends, tasks = batch
        await asyncio.gather(*await asyncio.gather(*tasks))
        offsets.update(ends)
        if time.perf_counter() - last_commit > 0.5:
            await consumer.commit(offsets)
            last_commit = time.perf_counter()
    await consumer.commit(offsets)


async def raw_http_loop(  # noqa: PLR0917 - spawned processes get positional arguments
    servers: str, topic: str, out: str, n: int, url: str, concurrency: int
) -> dict[str, float]:
    """Raw aiokafka + the handler's HTTP client: one chat call per record, `concurrency` at a
    time, until n acked.

    Each fetched batch's offsets are committed once all of its results are acknowledged and
    every earlier batch's were (at most every 0.5 s, as the runtime's `commit_interval_s`), the
    simplest correct at-least-once loop that keeps `concurrency` calls in flight.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=f"rawhttp-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, enable_idempotence=True, acks="all", linger_ms=2
    )
    client = _client(url)
    await client.start()
    await consumer.start()
    await producer.start()
    slots = asyncio.Semaphore(concurrency)
    call = _Caller(client, producer, out, slots)
    batches: asyncio.Queue[_Batch | None] = asyncio.Queue()
    fetched: dict[Any, list[Any]] = {}
    while not fetched:  # the clock starts at the first records, as it does for the runtime
        fetched = await consumer.getmany(timeout_ms=50, max_records=500)
    started = time.perf_counter()
    cpu_started = time.process_time()
    settler = asyncio.create_task(_settle(consumer, batches))
    taken = 0
    while True:
        tasks = []
        for records in fetched.values():
            for record in records:
                await slots.acquire()  # fetching waits while `concurrency` calls are out
                tasks.append(asyncio.create_task(call(record)))
            taken += len(records)
        batches.put_nowait(({tp: rs[-1].offset + 1 for tp, rs in fetched.items()}, tasks))
        if taken >= n:
            break
        fetched = await consumer.getmany(timeout_ms=50, max_records=500)
    batches.put_nowait(None)
    await settler
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    await client.stop()
    await producer.stop()
    await consumer.stop()
    return {"events_per_s": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}
