"""The requests, the direct load, the results reader and the summary sequence of
bench/pipeline_bench.py, each meant to run in a fresh process of its own.

Why a module of its own: the driver starts processes and prints figures; what runs inside the
measured processes' neighbours (the load that drives the proxy directly, the producer of the
preload, the reader counting results, the client timing summaries) is kept here, so the driver
stays readable and each piece is importable by a spawned process.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
from collections import Counter
from typing import Any

import av
import msgspec
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from PIL import Image

from consumers.errors import HandlerError
from consumers.handler_config import HandlerResources, ProxyCompletionsOptions, proxy_completions
from consumers.handlers import HandlerContext
from consumers.settings import load_kafka_settings
from core.redact import Redactor
from pipelines._structured_schemas import CaptionRequested
from pipelines.structured import Captioning, StructuredOptions
from pipelines.summaries import SummaryRequested, VideoRef
from schemas import (
    ChatMessage,
    CompletionRequested,
    ImagePart,
    ImageURL,
    Request,
    TextPart,
    build_headers,
    event_type_of,
)

__all__ = [
    "KINDS",
    "direct_load",
    "encode_video",
    "preload",
    "read_results",
    "steady_rate",
    "summary_sequence",
]

# Throughput workloads: `chat` is a completion.requested on the captioning task (the default
# proxy handler), `caption` a caption.requested (pipelines.structured.Captioning: JSON schema
# as response_format, the answer validated). Both are served by the Anthropic emulator.
KINDS = ("chat", "caption")
TASK = "captioning"
_ENCODER = msgspec.json.Encoder()


def steady_rate(stamps_s: list[float]) -> float:
    """Answers per second between the 10th and the 90th percentile of the answer times.

    Why beside the first-to-last rate: a preloaded burst ends with a tail in which only the
    partitions that got the most records are still being served (keys spread records unevenly:
    about 250 +/- 15 per partition for 2,000 over 8), while the direct load's one queue stays
    even to its end. A stream that goes on, as a producer's does, never has that tail; the
    middle of the run is the rate it sees. Both sides are trimmed alike.
    """
    ordered = sorted(stamps_s)
    low, high = len(ordered) // 10, len(ordered) * 9 // 10
    if high <= low or ordered[high] <= ordered[low]:
        return float("nan")
    return (high - low) / (ordered[high] - ordered[low])


def _photo() -> str:
    """A 96x96 product-photo stand-in as a PNG data URL (a gradient, so it is not trivial)."""
    ramp = np.linspace(0, 255, 96, dtype=np.uint8)
    across, down = np.tile(ramp, (96, 1)), np.tile(ramp[:, None], (1, 96))
    pixels = np.stack([across, down, 255 - across], axis=2)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _event(kind: str, i: int, photo: str, upstream_ms: int) -> Request:
    """Request `i` of `kind`; `upstream_ms` > 0 asks the emulator to take that long to answer
    (its `[[fault:latency=N]]` marker, in the text the provider sees), as a real model does."""
    ids = {"event_id": str(uuid.uuid4()), "subject": f"product-{i}-{uuid.uuid4().hex[:6]}"}
    marker = f" [[fault:latency={upstream_ms}]]" if upstream_ms > 0 else ""
    if kind == "chat":
        return CompletionRequested(
            **ids,
            task=TASK,
            messages=[
                ChatMessage(role="system", content="You write short product captions."),
                ChatMessage(
                    role="user",
                    content=[
                        TextPart(text="Caption this product photo in one sentence." + marker),
                        ImagePart(image_url=ImageURL(url=photo)),
                    ],
                ),
            ],
            max_tokens=120,
        )
    return CaptionRequested(**ids, task=TASK, images=[photo], context="linen shirt, navy" + marker)


def _records(
    kind: str, n: int, upstream_ms: int = 0
) -> list[tuple[Request, bytes, list[tuple[str, bytes]]]]:
    photo = _photo()
    out = []
    for i in range(n):
        event = _event(kind, i, photo, upstream_ms)
        headers = build_headers(
            event_id=event.event_id, event_type=event_type_of(event), source="urn:bench"
        )
        out.append((event, _ENCODER.encode(event), headers))
    return out


def _handler(kind: str, config: str, proxy_url: str, key: str) -> Any:
    """The handler the consumer's registry builds for `kind`, from the same config entry's
    factory, so the direct load sends the proxy byte for byte what the consumer sends."""
    settings = load_kafka_settings(config)
    proxy = msgspec.structs.replace(settings.proxy, url=proxy_url)
    resources = HandlerResources(
        settings=msgspec.structs.replace(settings, proxy=proxy),
        proxy_api_key=key,
        redactor=Redactor(),
    )
    if kind == "chat":
        return proxy_completions(ProxyCompletionsOptions(), resources)
    return Captioning(StructuredOptions(), resources)


async def _no_progress(stage: str, progress: float, message: str) -> None:
    return None


async def direct_load(  # noqa: PLR0917 - spawned processes get positional arguments
    kind: str, config: str, proxy_url: str, key: str, concurrency: int, n: int, upstream_ms: int = 0
) -> dict[str, Any]:
    """The baseline: `n` requests of `kind` straight to the proxy, `concurrency` at a time,
    through the handler object itself (its pooled aiohttp client, body and headers), no Kafka.

    Throughput is (answers - 1) over the time from the first answer to the last, as the
    measured side's is from its results' timestamps. A warm-up of 2 x concurrency goes first.
    """
    handler = _handler(kind, config, proxy_url, key)
    await handler.start()
    warm = _records(kind, 2 * concurrency, upstream_ms)
    records = _records(kind, n, upstream_ms)
    failures: Counter[str] = Counter()
    done: list[float] = []

    async def worker(queue: list[Any], times: list[float]) -> None:
        while queue:
            event, _, headers = queue.pop()
            traceparent = dict(headers)["traceparent"].decode()
            ctx = HandlerContext(attempt=1, traceparent=traceparent, report=_no_progress)
            try:
                await handler.handle(event, ctx)
            except HandlerError as exc:
                failures[type(exc).__name__] += 1
                continue
            times.append(time.time())

    try:
        await asyncio.gather(*(worker(warm, []) for _ in range(concurrency)))
        cpu = time.process_time()
        await asyncio.gather(*(worker(records, done) for _ in range(concurrency)))
        cpu = time.process_time() - cpu
    finally:
        await handler.stop()
    span = done[-1] - done[0] if len(done) > 1 else float("nan")
    return {
        "events_per_s": (len(done) - 1) / span,
        "steady_per_s": steady_rate(done),
        "answered": len(done),
        "cpu_us_per_event": cpu / n * 1e6,
        "failures": dict(failures),
    }


async def preload(
    servers: str, topic: str, kind: str, n: int, upstream_ms: int = 0
) -> dict[str, float]:
    """Produce `n` request records of `kind` (keyed by subject): the seconds it took, and the
    share of the records the fullest partition got (its keys decide)."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5, max_batch_size=1_048_576)
    await producer.start()
    records = _records(kind, n, upstream_ms)
    started = time.perf_counter()
    futures = [
        await producer.send(topic, value, key=event.subject.encode(), headers=headers)
        for event, value, headers in records
    ]
    placed = await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    per_partition = Counter(meta.partition for meta in placed)
    return {"seconds": elapsed, "largest_share": max(per_partition.values()) / len(placed)}


class _Outcome(msgspec.Struct):
    """What the reader needs of any result (unknown fields ignored)."""

    type: str
    request_id: str


async def read_results(servers: str, topic: str, n: int, quiet_s: float) -> dict[str, Any]:
    """Read results on `topic` until `n` arrived (or `quiet_s` passed without one): each
    result's CreateTime (ms, sorted) and the result types seen. Long-polling, so it costs
    little while it waits."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=500,
        max_partition_fetch_bytes=8_000_000,
    )
    cpu = time.process_time()
    await consumer.start()
    decoder = msgspec.json.Decoder(_Outcome)
    stamps: dict[str, int] = {}
    types: Counter[str] = Counter()
    heard = time.monotonic()
    try:
        while len(stamps) < n and time.monotonic() - heard < quiet_s:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                heard = time.monotonic()
                for record in records:
                    outcome = decoder.decode(record.value)
                    if outcome.request_id not in stamps:
                        stamps[outcome.request_id] = record.timestamp
                        types[outcome.type] += 1
    finally:
        await consumer.stop()
    cpu = time.process_time() - cpu
    return {"stamps": sorted(stamps.values()), "types": dict(types), "cpu_s": cpu}


def encode_video(seconds: int, width: int, height: int, fps: int = 30) -> bytes:
    """A real MPEG-4 video: a gradient that moves and changes colour frame by frame, so every
    frame differs (a flat grey clip would decode unrealistically fast)."""
    out = io.BytesIO()
    xs = np.arange(width, dtype=np.int32)[None, :]
    ys = np.arange(height, dtype=np.int32)[:, None]
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 1_500_000
        for i in range(seconds * fps):
            r = (xs + 3 * i) % 256 + 0 * ys
            g = (ys + 2 * i) % 256 + 0 * xs
            b = ((xs + ys) // 2 + 5 * i) % 256
            pixels = np.stack([r, g, b], axis=2).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


class _Latency(msgspec.Struct):
    upstream: float = 0.0
    total: float = 0.0
    overhead: float = 0.0


class _Summary(msgspec.Struct):
    type: str
    request_id: str
    frames: int = 0
    proxy_latency_ms: _Latency | None = None
    error: dict[str, Any] | None = None


class _Progress(msgspec.Struct):
    request_id: str
    stage: str
    occurred_at: str


def _epoch_ms(rfc3339: str) -> float:
    from datetime import datetime  # noqa: PLC0415 - only here

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000


def _complete(row: dict[str, Any]) -> bool:
    """The result is in, and so are the three progress stages before it (the two topics may
    come in different fetches); a failure may have fewer stages."""
    if "result_ms" not in row:
        return False
    return len(row["stages"]) >= 3 or str(row.get("type", "")).endswith("failed")


async def summary_sequence(  # noqa: PLR0917 - spawned processes get positional arguments
    servers: str, requests: str, results: str, status: str, path: str, n: int
) -> list[dict[str, Any]]:
    """Send `n` video summaries one at a time (each after the previous result), and return
    per event the request's send time, its progress stages' times and its result's time
    (CreateTime, ms) with the proxy's latency split."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    reader = AIOKafkaConsumer(
        results, status, bootstrap_servers=servers, group_id=None,
        auto_offset_reset="latest", fetch_max_wait_ms=100,
    )  # fmt: skip
    await producer.start()
    await reader.start()
    await reader.getmany(timeout_ms=500)  # join at the end before the first request is sent
    summary, progress = msgspec.json.Decoder(_Summary), msgspec.json.Decoder(_Progress)
    rows: list[dict[str, Any]] = []
    try:
        for i in range(n):
            event = SummaryRequested(
                event_id=str(uuid.uuid4()),
                subject=f"video-{i}-{uuid.uuid4().hex[:6]}",
                video=VideoRef(path=path),
                prompt="Summarise this video in two sentences.",
            )
            headers = build_headers(
                event_id=event.event_id, event_type=event_type_of(event), source="urn:bench"
            )
            sent = int(time.time() * 1000)
            await producer.send_and_wait(
                requests, _ENCODER.encode(event), key=event.subject.encode(),
                headers=headers, timestamp_ms=sent,
            )  # fmt: skip
            row: dict[str, Any] = {"sent_ms": sent, "stages": {}}
            deadline = time.monotonic() + 120
            while not _complete(row) and time.monotonic() < deadline:
                for tp, records in (await reader.getmany(timeout_ms=1000)).items():
                    for record in records:
                        if tp.topic == status:
                            p = progress.decode(record.value)
                            if p.request_id == event.event_id:
                                row["stages"][p.stage] = _epoch_ms(p.occurred_at)
                            continue
                        s = summary.decode(record.value)
                        if s.request_id != event.event_id:
                            continue
                        row |= {"result_ms": record.timestamp, "type": s.type, "frames": s.frames}
                        row["error"] = s.error
                        if s.proxy_latency_ms is not None:
                            row["proxy"] = msgspec.structs.asdict(s.proxy_latency_ms)
            rows.append(row)
    finally:
        await reader.stop()
        await producer.stop()
    return rows
