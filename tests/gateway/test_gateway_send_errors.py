"""`gateway send` against a Kafka broker it cannot reach: one line naming the address, exit 4."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from child_process import free_port
from gateway_support import run_gateway

from gateway.cli import main
from gateway.send import BROKER_UNREACHABLE

# Every connection attempt gives up after this; the refused ones give up at once.
REQUEST_TIMEOUT_MS = 1000

COMPLETION = ["--task", "captioning", "--text", "Describe a red linen shirt"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose only setting is a short Kafka request timeout."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f"gateway_settings:\n  kafka:\n    consumer:\n"
        f"      request_timeout_ms: {REQUEST_TIMEOUT_MS}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """An address that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def _send(config: Path, address: str, *extra: str) -> tuple[int, str]:
    code, out, err = await run_gateway(
        "send", "--config", str(config), "--bootstrap", address, *COMPLETION, *extra,
        timeout_s=30.0,
    )  # fmt: skip
    return code, out + err


@pytest.mark.parametrize("wait", [[], ["--wait"]], ids=["sent", "waiting"])
async def test_a_refused_address_is_named_on_one_line_with_its_own_exit_code(
    config: Path, wait: list[str]
) -> None:
    """A broker address that refuses connections ends the send with one line naming it."""
    address = f"127.0.0.1:{free_port()}"

    code, printed = await _send(config, address, *wait)

    assert code == BROKER_UNREACHABLE, printed
    assert f"send: could not reach the Kafka broker at {address}\n" in printed
    assert "Traceback" not in printed


async def test_a_broker_that_never_answers_is_given_up_within_the_request_timeout(
    config: Path, silent_broker: str
) -> None:
    """A connection nobody answers is given up after the configured request timeout."""
    started = time.monotonic()

    code, printed = await _send(config, silent_broker, "--wait")

    assert code == BROKER_UNREACHABLE, printed
    assert f"could not reach the Kafka broker at {silent_broker}" in printed
    assert "Traceback" not in printed
    # Interpreter start-up included; aiokafka's default (40 s) would be far beyond it.
    assert time.monotonic() - started < 20.0


def test_the_help_documents_the_unreachable_broker_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`gateway send --help` lists the exit code that an unreachable broker returns."""
    with pytest.raises(SystemExit):
        main(["send", "--help"])

    assert f"  {BROKER_UNREACHABLE}  the Kafka broker could not be reached" in (
        capsys.readouterr().out
    )
