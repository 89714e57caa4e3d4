"""`gateway up --workers N`: N proxy processes serving one port, supervised by this process.

Why it exists: one Python process serves the proxy on one core. The parent keeps running the
rest of the stack (emulators, broker, consumers) and, in place of the in-process proxy, starts
N `gateway.worker` processes that each bind the port with SO_REUSEPORT (why, in
`gateway.worker.reuseport_socket`) and build their own proxy from the same settings.

Guarantees:
- The gateway database is migrated once, here, before any worker opens it; everything the
  workers share is in that database (keys, identities, media jobs; SQLite in WAL mode or
  PostgreSQL) or in Redis. So several workers need a gateway database.
- Start-up returns once every worker has said it serves; one failing to start stops the others
  and fails the start (a configuration error as a ConfigError, as a single process would).
- Exactly one worker (index 0, also once restarted) sweeps unfinished media jobs.
- A worker that exits unasked is restarted after a back-off (0.5 s doubling to 30 s, back to
  0.5 s once a worker has served a minute), each exit and restart logged.
- `stop()` sends SIGTERM to every worker, waits for their graceful shutdown, kills any still
  running after that, and leaves no process behind; a worker also stops when this process
  dies (its stdin closes).
- With N > 1 every worker gets one fresh PROMETHEUS_MULTIPROC_DIR, so a multiprocess
  collector aggregates their metrics; the directory is removed on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import structlog

from core.config import ConfigError
from gateway.components import EmbeddedEmulators, keys_line, safe_url
from gateway.settings import StackSettings
from gateway.worker import WORKER_HEADER, WorkerReport, WorkerSpec, reuseport_socket

if TYPE_CHECKING:
    import socket

    from proxy.settings import ProxySettings

__all__ = ["METRICS_DIR_ENV", "ProxyWorkers", "WorkerError"]

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A worker imports LiteLLM and opens the database before it serves: tens of seconds on a
# loaded machine.
_START_TIMEOUT_S = 180.0
# uvicorn's graceful shutdown (5 s) and the database's close, with room to spare.
_STOP_TIMEOUT_S = 20.0
_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 30.0
_STABLE_S = 60.0


class WorkerError(RuntimeError):
    """A proxy worker could not start (not the configuration's fault)."""

    retriable = False


@dataclass(slots=True)
class _Slot:
    """Worker `index` and the process currently serving as it."""

    index: int
    process: asyncio.subprocess.Process | None = None
    ready_at: float | None = None
    monitor: asyncio.Task[None] | None = None


class ProxyWorkers:
    """The proxy as N supervised worker processes on one port (a `Component`)."""

    name = "proxy"

    def __init__(self, settings: StackSettings, emulators: EmbeddedEmulators) -> None:
        self._settings = settings
        self._emulators = emulators
        self._slots = [_Slot(index) for index in range(settings.workers)]
        self._reserved: socket.socket | None = None
        self._port = settings.proxy_port
        self._environ: dict[str, str] = {}
        self._child_env: dict[str, str] = {}
        self._metrics_dir: str | None = None
        self._stopping = False
        self.proxy_settings: ProxySettings | None = None
        self._log = structlog.get_logger("gateway.workers")

    @property
    def url(self) -> str:
        return f"http://{self._settings.proxy_host}:{self._port}"

    @property
    def pids(self) -> list[int]:
        """The pids of the workers serving now."""
        return [s.process.pid for s in self._slots if s.process and s.process.returncode is None]

    def describe(self) -> list[str]:
        """Start-up lines: where the provider keys come from, and how many workers serve."""
        if self.proxy_settings is None:
            raise RuntimeError("the proxy has not started")
        pids = ", ".join(str(pid) for pid in self.pids)
        redis = self.proxy_settings.budgets.redis_url
        # Each worker opens the budgets' store itself (and logs when Redis is unreachable).
        budgets = (
            f"budgets: shared by the workers in Redis at {safe_url(redis)} when reachable, "
            "else split evenly between the workers"
            if redis
            else "budgets: split evenly between the workers (no Redis configured)"
        )
        return [
            keys_line(self.proxy_settings.keys),
            budgets,
            f"proxy: {len(self._slots)} worker processes serve port {self._port} "
            f"(pids {pids}; each answer names its worker's pid in {WORKER_HEADER})",
        ]

    async def start(self) -> None:
        from database import Database, DatabaseError  # noqa: PLC0415 - SQLAlchemy, Alembic
        from proxy.settings import build_settings  # noqa: PLC0415

        s = self._settings
        if s.config is None:
            raise ConfigError("the proxy needs a config file (--config)")
        self._environ = {**s.environ, **self._emulators.environ}
        # Built here too: a bad config stops the start before any worker is spawned.
        self.proxy_settings = build_settings(
            s.config, self._environ, master_key=s.master_key, redactor=s.redactor
        )
        url = self.proxy_settings.keys.database_url
        if not url:
            raise ConfigError(
                f"--workers {len(self._slots)} needs the gateway database "
                "(gateway_settings.keys.database_url or sqlite_path): the workers share keys "
                "and media jobs through it"
            )
        database = Database(url)
        try:
            await database.start()  # migrates, under the database's migration lock
        except DatabaseError as exc:
            raise ConfigError(f"gateway database: {exc}") from exc
        await database.stop()
        self._reserved = reuseport_socket(s.proxy_host, s.proxy_port)
        self._port = int(self._reserved.getsockname()[1])
        self._child_env = dict(os.environ)
        if len(self._slots) > 1:
            self._metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
            self._environ[METRICS_DIR_ENV] = self._metrics_dir
            self._child_env[METRICS_DIR_ENV] = self._metrics_dir
        try:
            async with asyncio.TaskGroup() as group:
                for slot in self._slots:
                    group.create_task(self._launch(slot))
        except BaseExceptionGroup as failed:
            await self.stop()
            # The first failure says why (a configuration error keeps its type and exit code).
            raise failed.exceptions[0] from None
        for slot in self._slots:
            slot.monitor = asyncio.create_task(self._supervise(slot))
        self._log.info("proxy_workers_started", workers=len(self._slots), pids=self.pids)

    async def _launch(self, slot: _Slot) -> None:
        """Start worker `slot.index` and return once it serves; raise when it cannot."""
        s = self._settings
        assert s.config is not None and s.master_key is not None  # checked / generated by `up`
        spec = WorkerSpec(
            index=slot.index,
            config=str(s.config),
            environ=self._environ,
            master_key=s.master_key,
            host=s.proxy_host,
            port=self._port,
            log_json=s.log_json,
            sweep_jobs=slot.index == 0,
            workers=len(self._slots),
        )
        slot.ready_at = None
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self._child_env,
        )
        slot.process = process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(msgspec.json.encode(spec) + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), _START_TIMEOUT_S)
            report = msgspec.json.decode(line, type=WorkerReport) if line.strip() else None
            if report is None or not report.ready:
                await process.wait()
        except BaseException:  # a timeout, a cancelled start: the half-started worker goes
            await _end(process, timeout_s=0)
            raise
        if report is None or not report.ready:
            why = report.error if report else f"exited with code {process.returncode}"
            message = f"proxy worker {slot.index} did not start: {why}"
            raise ConfigError(message) if report and report.config_error else WorkerError(message)
        slot.ready_at = time.monotonic()

    async def _supervise(self, slot: _Slot) -> None:
        """Restart worker `slot.index` whenever it exits unasked, with a growing back-off."""
        backoff = _BACKOFF_MIN_S
        while True:
            assert slot.process is not None
            code = await slot.process.wait()
            if self._stopping:
                return
            pid = slot.process.pid
            self._forget_metrics(pid)
            if slot.ready_at is not None and time.monotonic() - slot.ready_at >= _STABLE_S:
                backoff = _BACKOFF_MIN_S
            self._log.warning(
                "proxy_worker_exited", worker=slot.index, pid=pid, code=code, restart_in_s=backoff
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
            try:
                await self._launch(slot)
            except (ConfigError, WorkerError) as exc:
                self._log.error("proxy_worker_restart_failed", worker=slot.index, error=str(exc))
                continue
            self._log.info("proxy_worker_restarted", worker=slot.index, pid=slot.process.pid)

    def _forget_metrics(self, pid: int) -> None:
        if self._metrics_dir is None:
            return
        from prometheus_client import multiprocess  # noqa: PLC0415 - only with workers

        # A dead worker's live gauges would otherwise be summed in for ever.
        # prometheus_client ships no annotations for this function.
        multiprocess.mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        self._stopping = True
        monitors = [slot.monitor for slot in self._slots if slot.monitor is not None]
        for monitor in monitors:
            monitor.cancel()
        await asyncio.gather(*monitors, return_exceptions=True)
        processes = [slot.process for slot in self._slots if slot.process is not None]
        await asyncio.gather(*(_end(p, timeout_s=_STOP_TIMEOUT_S) for p in processes))
        for slot in self._slots:
            slot.monitor = slot.process = None
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            self._metrics_dir = None
        self._log.info("proxy_workers_stopped")


async def _end(process: asyncio.subprocess.Process, *, timeout_s: float) -> None:
    """SIGTERM `process`, SIGKILL it after `timeout_s`, and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate() if timeout_s > 0 else process.kill()
        try:
            await asyncio.wait_for(process.wait(), timeout_s or None)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.stdin is not None:
        process.stdin.close()
