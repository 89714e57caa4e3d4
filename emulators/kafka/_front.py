"""A thin TCP front in front of each mock broker, filling the gaps the product needs.

Why it exists: librdkafka's mock cluster lacks the admin APIs and mishandles one group
ordering, and clients must reach every broker through the front for those fixes to apply.

- One listener per mock broker. The mock is told (``rd_kafka_mock_broker_set_host_port``) to
  advertise the front's address, so Metadata and FindCoordinator responses already point
  clients back at the front for every broker without any response rewriting.
- CreateTopics (19) and DeleteTopics (20) are answered here by calling the mock's
  ``topic_create`` / ``topic_delete``; ApiVersions responses (classic and flexible) are
  rewritten to advertise them at v0-v3, the non-flexible versions decoded here.
- SyncGroup: the mock completes a generation as soon as the leader's SyncGroup (the one that
  carries every member's assignment) arrives, so a follower whose SyncGroup comes later is
  rejected with INVALID_REQUEST (aiokafka's leader usually wins that race). The front holds the
  leader's request until every follower of that generation has sent its own SyncGroup through
  the front (followers = assignments - 1), plus a short settle, and at most
  ``sync_group_max_hold`` seconds. SyncGroup is capped at v3 in the mock so the request stays
  non-flexible and cheap to decode. All members of a group talk to the same coordinator
  broker, hence to the same front, so one barrier per front sees every member.
- Metadata requests that allow auto-creation create missing topics first, with the
  broker's configured default partition count (the mock's own auto-creation always uses 4).
  Metadata is capped at v8 so the request stays non-flexible.
- Produce with ``acks=0``: the mock answers it anyway; the front drops that response.
- Everything else is piped byte-for-byte: frames are split on their length prefix and only
  the request header is read. Responses are written back in request order (Kafka's per
  connection guarantee) even when some are produced locally.

A broker taken down through ``EmbeddedKafka`` also has its front listener closed, so clients
see refused connections as with a dead broker; the port is reopened when it comes back up.

Limits: admin requests are handled by whichever front receives them; there is no controller
election. No TLS or SASL.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from emulators.kafka import _wire

__all__ = ["Front", "FrontSettings"]

_log = structlog.get_logger()
_MAX_FRAME = 256 * 1024 * 1024
# After a client hangs up, how long to wait for answers to requests already forwarded.
_LINGER_S = 2.0
_ADMIN_API_RANGES = {
    _wire.API_CREATE_TOPICS: (0, _wire.CREATE_TOPICS_MAX_VERSION),
    _wire.API_DELETE_TOPICS: (0, _wire.DELETE_TOPICS_MAX_VERSION),
}


@dataclass(frozen=True, slots=True)
class FrontSettings:
    host: str
    sync_group_max_hold: float
    sync_group_settle: float
    # The two admin callbacks run on the front's loop thread and must not block for long.
    create_topic: Callable[[_wire.TopicSpec], tuple[int, str | None]]
    delete_topic: Callable[[str], int]
    auto_create_topic: Callable[[str], None]


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        prefix = await reader.readexactly(4)
        (size,) = struct.unpack(">i", prefix)
        if not 0 <= size <= _MAX_FRAME:
            return None
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _write_frame(writer: asyncio.StreamWriter, frame: bytes) -> None:
    writer.write(struct.pack(">i", len(frame)) + frame)


class _SyncBarrier:
    """Counts followers' SyncGroup requests per (group, generation) so the leader can wait."""

    def __init__(self) -> None:
        self._followers: dict[tuple[str, int], int] = {}
        self._changed = asyncio.Condition()

    async def follower_sent(self, request: _wire.SyncGroupRequest) -> None:
        key = (request.group_id, request.generation_id)
        async with self._changed:
            self._followers[key] = self._followers.get(key, 0) + 1
            self._changed.notify_all()

    async def leader_ready(self, request: _wire.SyncGroupRequest, max_hold: float) -> bool:
        """Wait until all followers synced (True) or ``max_hold`` passed (False)."""
        key = (request.group_id, request.generation_id)
        wanted = request.assignments - 1
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._followers.get(key, 0) >= wanted),
                    max_hold,
                )
            return True
        except TimeoutError:
            return False
        finally:
            # Generations only move forward: forget this one and any older of the group.
            for stale in [k for k in self._followers if k[0] == key[0] and k[1] <= key[1]]:
                del self._followers[stale]


class _Connection:
    """One client connection piped to one upstream mock-broker connection."""

    def __init__(
        self,
        settings: FrontSettings,
        barrier: _SyncBarrier,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self._settings = settings
        self._barrier = barrier
        self._client_r, self._client_w = client
        self._up_r, self._up_w = upstream
        # Responses in request order; each entry is resolved by the mock or locally.
        self._order: asyncio.Queue[asyncio.Future[bytes]] = asyncio.Queue()
        # correlation id -> (future, api_key, version), or None for a response to drop.
        self._waiting: dict[int, tuple[asyncio.Future[bytes], int, int] | None] = {}
        self._idle = asyncio.Event()  # set while no forwarded request awaits its answer
        self._idle.set()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._requests()),
            asyncio.create_task(self._responses()),
            asyncio.create_task(self._writer()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (self._client_w, self._up_w):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _requests(self) -> None:
        await self._forward_requests()
        # The client hung up. Closing the upstream socket now could make the mock drop
        # requests that arrive together with the close (acks=0 produces sent just before a
        # producer stops), so wait until it has answered everything forwarded.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), _LINGER_S)

    async def _forward_requests(self) -> None:
        loop = asyncio.get_running_loop()
        while (frame := await _read_frame(self._client_r)) is not None:
            api_key, version, correlation_id = _wire.request_header(frame)
            local = self._answer_locally(api_key, frame)
            if local is not None:
                done: asyncio.Future[bytes] = loop.create_future()
                done.set_result(local)
                self._order.put_nowait(done)
                continue
            if api_key == _wire.API_PRODUCE and not _wire.produce_expects_response(frame):
                # The mock answers acks=0 produces although Kafka never does; clients would
                # choke on the stray response, so it is dropped on arrival.
                self._waiting[correlation_id] = None
                self._idle.clear()
            else:
                future: asyncio.Future[bytes] = loop.create_future()
                self._waiting[correlation_id] = (future, api_key, version)
                self._idle.clear()
                self._order.put_nowait(future)
            if api_key == _wire.API_METADATA:
                # Create before the mock auto-creates with its fixed 4 partitions.
                for topic in _wire.parse_metadata_auto_create(frame):
                    self._settings.auto_create_topic(topic)
            sync = _wire.parse_sync_group(frame) if api_key == _wire.API_SYNC_GROUP else None
            if sync is not None and sync.assignments > 0:
                await self._hold_leader(sync)
            _write_frame(self._up_w, frame)
            await self._up_w.drain()
            if sync is not None and sync.assignments == 0:
                await self._barrier.follower_sent(sync)

    async def _hold_leader(self, sync: _wire.SyncGroupRequest) -> None:
        """Let every follower's SyncGroup reach the mock first (see module docstring)."""
        if sync.assignments <= 1:
            return
        settings = self._settings
        if await self._barrier.leader_ready(sync, settings.sync_group_max_hold):
            # The followers' frames are written; give the mock's poll loop time to read them.
            await asyncio.sleep(settings.sync_group_settle)
        else:
            _log.warning(
                "kafka_front_sync_group_hold_expired",
                group_id=sync.group_id,
                generation_id=sync.generation_id,
            )

    def _answer_locally(self, api_key: int, frame: bytes) -> bytes | None:
        if api_key == _wire.API_CREATE_TOPICS:
            request = _wire.parse_create_topics(frame)
            results: list[tuple[str, int, str | None]] = []
            for spec in request.topics:
                code, message = (
                    (0, None) if request.validate_only else self._settings.create_topic(spec)
                )
                results.append((spec.name, code, message))
            return _wire.create_topics_response(request.version, request.correlation_id, results)
        if api_key == _wire.API_DELETE_TOPICS:
            version, correlation_id, names = _wire.parse_delete_topics(frame)
            deleted = [(name, self._settings.delete_topic(name)) for name in names]
            return _wire.delete_topics_response(version, correlation_id, deleted)
        return None

    async def _responses(self) -> None:
        while (frame := await _read_frame(self._up_r)) is not None:
            (correlation_id,) = struct.unpack_from(">i", frame, 0)
            if correlation_id not in self._waiting:
                _log.warning("kafka_front_unexpected_response", correlation_id=correlation_id)
                return
            entry = self._waiting.pop(correlation_id)
            if not self._waiting:
                self._idle.set()
            if entry is None:
                continue
            future, api_key, version = entry
            if api_key == _wire.API_API_VERSIONS:
                frame = _wire.rewrite_api_versions(
                    frame, version, _wire.ApiVersionsRewrite(_ADMIN_API_RANGES)
                )
            future.set_result(frame)

    async def _writer(self) -> None:
        while True:
            frame = await (await self._order.get())
            # A client that hung up must not end the pipe: its forwarded requests still run.
            with contextlib.suppress(ConnectionError):
                _write_frame(self._client_w, frame)
                await self._client_w.drain()


class Front:
    """Listeners for every mock broker, served by one asyncio loop in a background thread."""

    def __init__(self, settings: FrontSettings) -> None:
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._upstreams: list[tuple[str, int]] = []
        self._ports: list[int] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._barrier: _SyncBarrier | None = None

    def start(self, listeners: list[tuple[int, tuple[str, int]]]) -> list[int]:
        """Listen on each (port, upstream) pair (port 0 = any free port); returns bound ports."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="kafka-front", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(listeners), loop)
        try:
            return future.result()
        except BaseException:
            self.stop()
            raise

    async def _listen(self, listeners: list[tuple[int, tuple[str, int]]]) -> list[int]:
        self._barrier = _SyncBarrier()
        ports: list[int] = []
        for port, upstream in listeners:
            server = await self._serve(port, upstream)
            self._servers.append(server)
            self._upstreams.append(upstream)
            ports.append(int(server.sockets[0].getsockname()[1]))
        self._ports = ports
        return list(ports)

    async def _serve(self, port: int, upstream: tuple[str, int]) -> asyncio.Server:
        return await asyncio.start_server(
            self._handler(upstream), self._settings.host, port, reuse_address=True
        )

    def set_accepting(self, index: int, accepting: bool) -> None:
        """Close or reopen listener ``index`` on its port, so a down broker refuses connects."""
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._set_accepting(index, accepting), self._loop)
        future.result(timeout=10)

    async def _set_accepting(self, index: int, accepting: bool) -> None:
        server = self._servers[index]
        if server.is_serving() == accepting:
            return
        if accepting:
            self._servers[index] = await self._serve(self._ports[index], self._upstreams[index])
        else:
            # close() stops listening at once; live connections end when the mock drops them.
            server.close()

    def _handler(
        self, upstream: tuple[str, int]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                try:
                    up = await asyncio.open_connection(*upstream)
                except OSError:
                    # The mock broker is down: drop the client as a dead broker would.
                    writer.close()
                    return
                assert self._barrier is not None
                await _Connection(self._settings, self._barrier, (reader, writer), up).run()
            except asyncio.CancelledError:
                # Cancelled by stop(); re-raising would only make asyncio log the task.
                writer.close()
            except Exception:  # a malformed frame must not take the listener down
                _log.exception("kafka_front_connection_failed", upstream=upstream)
                writer.close()
            finally:
                self._connections.discard(task)

        return handle

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def stop(self) -> None:
        """Close listeners and every piped connection, then stop and join the loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None
