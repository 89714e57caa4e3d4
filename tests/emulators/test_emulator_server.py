"""The background-thread server, the package entry points and the CLI."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from emulators import PROVIDERS, EmulatorServer, EmulatorSettings, create_emulator_app
from emulators.cli import register
from emulators.http.server import listening_socket
from emulators.testing import EmulatorHandle


def test_server_binds_free_port_and_stops() -> None:
    """start() returns once bound; stop() closes the port."""
    server = EmulatorServer(create_emulator_app("openai"))
    server.start()
    url = server.url
    assert httpx.get(f"{url}/_emulator/health").json() == {"ok": True}
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_emulator/health")


def test_stop_releases_hanging_request_quickly() -> None:
    """stop() returns promptly even while a hang fault holds a request open."""
    server = EmulatorServer(create_emulator_app("openai"))
    server.start()
    outcome: list[object] = []

    def call() -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": "[[fault:hang]]"}]}
        try:
            outcome.append(
                httpx.post(
                    f"{server.url}/v1/chat/completions",
                    json=body,
                    headers={"authorization": "Bearer k"},
                    timeout=10,
                ).status_code
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/_emulator/stats").json()["faults_served"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)  # polling interval, not synchronisation
    started = time.monotonic()
    server.stop()
    caller.join(5)
    assert time.monotonic() - started < 3
    assert outcome and not caller.is_alive()


def test_settings_restrict_keys() -> None:
    """allowed_keys in settings rejects other keys with the provider's 401."""
    settings = EmulatorSettings(allowed_keys=frozenset({"good-key"}))
    with EmulatorServer(create_emulator_app("gemini", settings)) as server:
        url = f"{server.url}/v1beta/models/m:generateContent"
        body = {"contents": [{"parts": [{"text": "x"}]}]}
        assert httpx.post(url, params={"key": "bad-key"}, json=body).status_code == 401
        assert httpx.post(url, params={"key": "good-key"}, json=body).status_code == 200


def test_unknown_emulator_name_is_rejected() -> None:
    """create_emulator_app refuses names outside PROVIDERS."""
    assert PROVIDERS == ("anthropic", "openai", "gemini", "fal", "vertex")
    with pytest.raises(ValueError, match="unknown emulator"):
        create_emulator_app("nope")


def test_register_adds_emulators_subcommand() -> None:
    """register() adds an 'emulators' subcommand to another CLI."""
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["emulators", "openai", "--port", "9000"])
    assert (args.command, args.provider, args.port) == ("emulators", "openai", 9000)
    assert callable(args.handler)


def test_cli_prints_urls_and_exits_on_sigterm() -> None:
    """python -m emulators all prints each emulator's base URL and exits 0 on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators", "all"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().split() for _ in PROVIDERS]
        assert [name for name, _ in lines] == list(PROVIDERS)
        for _, url in lines:
            assert httpx.get(f"{url}/_emulator/health").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_accepted_connections_have_nagle_off() -> None:
    """Connections the emulator accepts send small writes at once (TCP_NODELAY inherited).

    With Nagle on, every keep-alive response would wait ~40 ms for a delayed ACK, because
    uvicorn writes headers and body separately; the option is checked, not the latency.
    """
    listener = listening_socket("127.0.0.1", 0)
    try:
        listener.listen(1)
        with socket.create_connection(listener.getsockname(), timeout=5):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listener.close()


def test_emulators_fixture_starts_with_zeroed_stats(
    emulators: dict[str, EmulatorHandle],
) -> None:
    """The emulators fixture hands every emulator over with zeroed statistics."""
    assert all(handle.stats()["requests"] == 0 for handle in emulators.values())


def test_server_can_restart_with_same_app() -> None:
    """A stopped server starts again with the same app and keeps serving."""
    server = EmulatorServer(create_emulator_app("anthropic"))
    with server:
        first = server.url
    with server:
        assert httpx.get(f"{server.url}/_emulator/health").status_code == 200
    assert first.startswith("http://127.0.0.1:")
