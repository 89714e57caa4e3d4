"""`gateway send`: publish one request event of any kind and, with `--wait`, show its progress
and its result.

Why it exists: the quickest way to see the event pipeline work end to end, from a shell or a
test, with the same publisher the consumers use for their results. The watcher subscribes to
the results and status topics BEFORE publishing, so a fast answer cannot be missed; it reads
committed records only (transactions mode publishes results in transactions).

Exit codes: 0 a success result (or sent without `--wait`), 1 a failure result, 3 no result
within the timeout, 4 the Kafka broker could not be reached (one line naming the address; each
connection attempt is bounded by kafka.consumer.request_timeout_ms).
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import msgspec
from aiokafka import AIOKafkaConsumer

from consumers.errors import BrokerTimeout, BrokerUnavailable
from consumers.kafka_errors import kafka_errors
from consumers.kinds import COMPLETION, EventKind, kinds_codec
from consumers.publisher import EventPublisher
from consumers.settings import KafkaSettings
from core.redact import Redactor
from schemas import (
    ChatMessage,
    CompletionRequested,
    ContentPart,
    Failed,
    ImagePart,
    ImageURL,
    Request,
    TextPart,
)

__all__ = [
    "BROKER_UNREACHABLE",
    "TIMED_OUT",
    "SendRequest",
    "new_envelope",
    "send",
    "send_event",
]

TIMED_OUT = 3
BROKER_UNREACHABLE = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """One `gateway send` of a chat completion (the shortcut): its task, text and images."""

    task: str
    text: str
    images: Sequence[Path] = ()
    subject: str | None = None
    wait: bool = False
    timeout_s: float = 120.0


class _Envelope(msgspec.Struct):
    """The fields that tell whether a record answers our request (unknown fields ignored)."""

    type: str = ""
    request_id: str = ""


def new_envelope(task: str, subject: str | None = None) -> dict[str, Any]:
    """The fields `gateway send` sets on every request: a new id, the subject, the task."""
    return {"event_id": str(uuid.uuid4()), "subject": subject or str(uuid.uuid4()), "task": task}


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
    """Publish the chat completion `request` describes; with `wait`, print its progress and
    its result on one line. Returns an exit code."""
    parts: list[ContentPart] = [TextPart(text=request.text)]
    parts.extend(_image_part(path) for path in request.images)
    content: str | list[ContentPart] = request.text if len(parts) == 1 else parts
    event = CompletionRequested(
        **new_envelope(request.task, request.subject),
        messages=[ChatMessage(role="user", content=content)],
    )
    return await send_event(
        settings,
        bootstrap_servers,
        event,
        COMPLETION,
        wait=request.wait,
        timeout_s=request.timeout_s,
        redactor=redactor,
        pretty=False,
    )


async def send_event(
    settings: KafkaSettings,
    bootstrap_servers: str,
    event: Request,
    kind: EventKind[Any, Any],
    *,
    wait: bool,
    timeout_s: float,
    redactor: Redactor | None = None,
    pretty: bool = True,
    out: TextIO | None = None,
) -> int:
    """Publish `event` (of `kind`); with `wait`, print each of its progress events and then
    its result (indented JSON when `pretty`, then its artifacts). Returns an exit code."""
    out = out or sys.stdout
    codec = kinds_codec([kind])
    publisher = EventPublisher(settings, bootstrap_servers, codec, redactor=redactor)
    watcher: AIOKafkaConsumer | None = None
    try:
        try:
            # The watcher first: subscribed before publishing, a fast answer is not missed.
            watcher = await _watcher(settings, bootstrap_servers) if wait else None
            await publisher.start()
        except (BrokerUnavailable, BrokerTimeout):
            # aiokafka has already logged each address it tried; one line says what it means.
            sys.stderr.write(f"send: could not reach the Kafka broker at {bootstrap_servers}\n")
            return BROKER_UNREACHABLE
        await publisher.publish(
            settings.topics.requests.name, event, key=event.subject, subject=event.subject
        )
        out.write(f"sent {event.event_id}\n")
        out.flush()
        if watcher is None:
            return 0
        return await _await_result(
            watcher,
            settings=settings,
            request_id=event.event_id,
            kind=kind,
            timeout_s=timeout_s,
            pretty=pretty,
            out=out,
        )
    finally:
        await publisher.stop()
        if watcher is not None:
            await watcher.stop()


async def _watcher(settings: KafkaSettings, bootstrap_servers: str) -> AIOKafkaConsumer:
    watcher = AIOKafkaConsumer(
        settings.topics.results.name,
        settings.topics.status.name,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=100,
        isolation_level="read_committed",
        request_timeout_ms=settings.consumer.request_timeout_ms,
    )
    try:
        with kafka_errors():
            await watcher.start()
            await watcher.seek_to_end()
            for tp in watcher.assignment():
                await watcher.position(tp)  # resolves the end offsets now, before we publish
    except BaseException:
        await watcher.stop()  # a consumer that failed to start still holds its client
        raise
    return watcher


def progress_line(status: dict[str, Any]) -> str:
    """How one progress event reads: percent, stage, message, and the queue position and log
    lines when the handler reported them."""
    percent = float(status.get("progress") or 0.0)
    line = f"progress {percent:4.0%} {status.get('stage', '')}"
    if message := status.get("message"):
        line += f": {message}"
    position = status.get("queue_position")
    if position is not None:
        line += f" (queue position {position})"
    logs = status.get("logs") or []
    for entry in [logs] if isinstance(logs, str) else logs:
        line += f"\n  log: {entry}"
    return line


def _artifacts(value: Any) -> Iterator[dict[str, Any]]:
    """Every output artifact a result carries, wherever it sits."""
    if isinstance(value, dict):
        if "artifact_id" in value and "content_type" in value:
            yield value
            return
        for item in value.values():
            yield from _artifacts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _artifacts(item)


def result_text(result: dict[str, Any], *, pretty: bool) -> str:
    """The result as printed: its JSON, then one line per artifact with its link."""
    if not pretty:
        return json.dumps(result, separators=(",", ":"))
    lines = [json.dumps(result, indent=2, sort_keys=False)]
    for artifact in _artifacts(result):
        link = artifact.get("url") or "(no link: artifacts.signing_key or public_url unset)"
        lines.append(
            f"artifact {artifact['artifact_id']} {artifact['content_type']} "
            f"{artifact.get('size', '?')} bytes {link}"
        )
    return "\n".join(lines)


async def _await_result(
    watcher: AIOKafkaConsumer,
    *,
    settings: KafkaSettings,
    request_id: str,
    kind: EventKind[Any, Any],
    timeout_s: float,
    pretty: bool,
    out: TextIO,
) -> int:
    watch = _Watch(watcher, settings.topics.status.name, request_id, out)
    results: msgspec.json.Decoder[Any] = msgspec.json.Decoder(kind.succeeded | kind.failed)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        found = await watch.poll()
        if found is None:
            continue
        head, value = found
        # The handler's progress was acknowledged before its result was published, so it
        # lies below the status topic's current end: print all of it, then the result.
        await watch.drain_status(deadline)
        try:
            failed = isinstance(results.decode(value), Failed)
        except msgspec.DecodeError:
            # Another kind's result for our id (e.g. the runtime's generic failure).
            failed = not head.type.endswith(".succeeded")
        out.write(result_text(msgspec.json.decode(value), pretty=pretty) + "\n")
        return 1 if failed else 0
    sys.stderr.write(f"timed out after {timeout_s:g}s waiting for the result\n")
    return TIMED_OUT


class _Watch:
    """Reads the results and status topics for one request, printing its progress."""

    def __init__(self, watcher: AIOKafkaConsumer, status: str, request_id: str, out: TextIO):
        self._watcher = watcher
        self._status = status
        self._request_id = request_id
        self._out = out
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._result: tuple[_Envelope, bytes] | None = None

    def _ours(self, raw: bytes) -> _Envelope | None:
        try:
            head = self._envelope.decode(raw)
        except msgspec.DecodeError:
            return None
        return head if head.request_id == self._request_id else None

    async def poll(self, *, status_only: bool = False) -> tuple[_Envelope, bytes] | None:
        """One fetch: print our progress events (before any result of the same fetch); the
        result, once seen."""
        batches = await self._watcher.getmany(timeout_ms=200)
        # Status first: a fetch holding both must show the progress before the result.
        for tp in sorted(batches, key=lambda tp: tp.topic != self._status):
            for record in batches[tp]:
                head = self._ours(record.value)
                if head is None:
                    continue
                if tp.topic == self._status:
                    if head.type == "job.progress":
                        self._out.write(progress_line(msgspec.json.decode(record.value)) + "\n")
                        self._out.flush()
                elif self._result is None and not status_only:
                    self._result = (head, record.value)
        return self._result

    async def drain_status(self, deadline: float) -> None:
        """Print every progress event already on the status topic."""
        status = [tp for tp in self._watcher.assignment() if tp.topic == self._status]
        ends = await self._watcher.end_offsets(status)
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            positions = {tp: await self._watcher.position(tp) for tp in status}
            if all(positions[tp] >= ends[tp] for tp in status):
                return
            await self.poll(status_only=True)
