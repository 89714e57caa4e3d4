"""`gateway send`: publish one request event and, with `--wait`, print its result.

Why it exists: the quickest way to see the event pipeline work end to end, from a shell or a
test, with the same publisher the consumers use for their results.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer

from consumers.publisher import EventPublisher
from consumers.settings import KafkaSettings
from core.redact import Redactor
from schemas import (
    ChatMessage,
    CompletionRequested,
    ContentPart,
    EventCodec,
    ImagePart,
    ImageURL,
    TextPart,
)

__all__ = ["SendRequest", "send"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """One `gateway send`: the request to publish and whether to wait for its result."""

    task: str
    text: str
    images: Sequence[Path] = ()
    subject: str | None = None
    wait: bool = False
    timeout_s: float = 120.0


def _image_part(path: Path) -> ImagePart:
    data = path.read_bytes()
    mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return ImagePart(image_url=ImageURL(url=url))


async def send(
    settings: KafkaSettings,
    bootstrap_servers: str,
    request: SendRequest,
    *,
    redactor: Redactor | None = None,
) -> int:
    """Publish `request`; with `wait`, print its progress and result. Returns an exit code."""
    parts: list[ContentPart] = [TextPart(text=request.text)]
    parts.extend(_image_part(path) for path in request.images)
    content: str | list[ContentPart] = request.text if len(parts) == 1 else parts
    event = CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject=request.subject or str(uuid.uuid4()),
        task=request.task,
        messages=[ChatMessage(role="user", content=content)],
    )
    codec = EventCodec()
    watcher = None
    if request.wait:
        # Subscribe before publishing so a fast result cannot be missed.
        watcher = AIOKafkaConsumer(
            settings.topics.results.name,
            settings.topics.status.name,
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
            # Transactions mode's results are visible once committed; plain ones at once.
            isolation_level="read_committed",
        )
        await watcher.start()
        await watcher.seek_to_end()
        for tp in watcher.assignment():
            await watcher.position(tp)
    publisher = EventPublisher(settings, bootstrap_servers, codec, redactor=redactor)
    await publisher.start()
    try:
        await publisher.publish(
            settings.topics.requests.name, event, key=event.subject, subject=event.subject
        )
        sys.stdout.write(f"sent {event.event_id}\n")
        if watcher is not None:
            return await _await_result(watcher, codec, settings, event.event_id, request.timeout_s)
        return 0
    finally:
        await publisher.stop()
        if watcher is not None:
            await watcher.stop()


async def _await_result(
    watcher: Any, codec: EventCodec, settings: KafkaSettings, request_id: str, timeout_s: float
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        batches = await watcher.getmany(timeout_ms=200)
        for tp, records in batches.items():
            for record in records:
                try:
                    if tp.topic == settings.topics.status.name:
                        status = codec.decode_status(record.value)
                        if status.request_id == request_id:
                            sys.stdout.write(
                                f"progress {status.progress:.0%} {status.stage} {status.message}\n"
                            )
                        continue
                    result = codec.decode_result(record.value)
                except msgspec.DecodeError:
                    continue
                if result.request_id != request_id:
                    continue
                sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
                succeeded = result.__struct_config__.tag == "completion.succeeded"
                return 0 if result.event_id and succeeded else 1
        sys.stdout.flush()
    sys.stderr.write("timed out waiting for the result\n")
    return 1
