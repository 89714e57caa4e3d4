"""Specifications of the consumer CLI: topic creation, sending a request and waiting for it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
from aiokafka.admin import AIOKafkaAdminClient
from consumer_handlers import SlowEcho
from consumer_support import ROOT, fast_settings, write_config

from consumers import KafkaSettings, register
from consumers.settings import TopicSettings, TopicsSettings


async def _run(*args: str, timeout_s: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumers",
        *args,
        cwd=ROOT,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_register_adds_the_commands() -> None:
    """register() plugs consume, topics ensure and send into an existing CLI."""
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["send", "--task", "captioning", "--text", "hi", "--wait"])
    assert (args.command, args.task, args.wait) == ("send", "captioning", True)
    assert parser.parse_args(["topics", "ensure"]).topics_command == "ensure"
    assert parser.parse_args(["consume", "--proxy-url", "http://p"]).proxy_url == "http://p"


async def test_topics_ensure_creates_missing_topics_idempotently(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """The first run creates every configured topic; a second run finds them all existing."""
    tag = uuid.uuid4().hex[:8]
    settings = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        topics=TopicsSettings(
            requests=TopicSettings(name=f"cli-req-{tag}", partitions=3),
            results=TopicSettings(name=f"cli-res-{tag}", partitions=2),
            status=TopicSettings(name=f"cli-st-{tag}", partitions=1),
            dead_letters=TopicSettings(name=f"cli-dlq-{tag}", partitions=1),
        ),
    )
    config = write_config(settings, tmp_path / "c.yaml")
    first = await _run("topics", "ensure", "--config", str(config))
    second = await _run("topics", "ensure", "--config", str(config))
    assert first[0] == 0, first[2]
    assert first[1].count("created") == 4
    assert second[0] == 0
    assert second[1].count("exists") == 4
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([f"cli-req-{tag}"])
    finally:
        await admin.close()
    assert len(described[0]["partitions"]) == 3


async def test_send_waits_for_the_result(
    kafka_broker: Any, start_service: Any, tmp_path: Path
) -> None:
    """`send --wait` publishes a request and prints its result once a consumer answered."""
    settings = fast_settings(kafka_broker)
    await start_service(settings, SlowEcho())
    config = write_config(settings, tmp_path / "c.yaml")
    image = tmp_path / "look.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    code, out, err = await _run(
        "send",
        "--config",
        str(config),
        "--task",
        "captioning",
        "--text",
        "red dress",
        "--image",
        str(image),
        "--wait",
        "--timeout",
        "20",
    )
    assert code == 0, err
    sent_id = out.splitlines()[0].removeprefix("sent ")
    result = json.loads(out.splitlines()[-1])
    assert (result["type"], result["request_id"]) == ("completion.succeeded", sent_id)
    assert msgspec.json.decode(out.splitlines()[-1])["task"] == "captioning"
