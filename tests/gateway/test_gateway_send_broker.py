"""`gateway send` of the product's kinds through a broker, a running consumer, the proxy and
the provider emulators: progress lines, the result, and exit codes."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from gateway_support import ROOT, run_gateway

from consumers import ConsumerService
from consumers.handler_config import build_registry
from consumers.settings import KafkaSettings, load_kafka_settings


def _support(name: str) -> ModuleType:
    """A helper module of the pipeline tests (the proxy over the emulators, test videos)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "pipelines" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_emulator: Any,
    openai_emulator: Any,
    gemini_emulator: Any,
) -> Iterator[tuple[Any, Path]]:
    """The gateway proxy in this process over the emulators, and its config's path."""
    where = tmp_path_factory.mktemp("proxy")
    running = _support("structured_support").start_proxy(
        where, anthropic_emulator, openai_emulator, gemini_emulator
    )
    yield running, where / "litellm_config.yaml"
    running.stop()


class Stack:
    """A consumer serving styling and video summaries, and the config `gateway send` reads."""

    def __init__(self, config: Path, settings: KafkaSettings, videos: Path) -> None:
        self.config = config
        self.settings = settings
        self.videos = videos

    async def send(self, *args: str) -> tuple[int, str, str]:
        servers = self.settings.bootstrap_servers or ""
        return await run_gateway(
            "send", *args, "--config", str(self.config), "--bootstrap", servers, timeout_s=90
        )


def _write_config(where: Path, proxy_config: Path, topics: dict[str, Any]) -> Path:
    """The proxy's config (its routing) plus the consumer's handlers and the artifact store
    that `gateway send` uploads into and the summary handler reads from."""
    config = where / "send.yaml"
    handlers = [
        {"factory": "pipelines.structured:Styler", "tasks": ["styling"]},
        {
            "factory": "pipelines.summaries:VideoSummaries",
            "tasks": ["video-summarization"],
            "options": {"config": str(config), "allowed_roots": [str(where)]},
        },
    ]
    kafka = {
        "topics": topics,
        "dedupe_redis_url": None,
        "rate_limit_redis_url": None,
        "commit_interval_s": 0.2,
        "handlers": handlers,
    }
    data = yaml.safe_load(proxy_config.read_text(encoding="utf-8"))
    data["gateway_settings"] |= {"kafka": kafka, "artifacts": {"root": str(where / "artifacts")}}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return config


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Any:
    """The embedded broker, or the broker fixture a test names through `indirect`."""
    return request.getfixturevalue(getattr(request, "param", "kafka_broker"))


@pytest.fixture
async def stack(broker: Any, proxy: tuple[Any, Path], tmp_path: Path) -> AsyncIterator[Stack]:
    """Fresh topics on the broker and a consumer serving them through the proxy."""
    kafka_broker = broker
    running_proxy, proxy_config = proxy
    tag = uuid.uuid4().hex[:8]
    topics = {
        role: {"name": f"send-{role}-{tag}", "partitions": 1}
        for role in ("requests", "results", "status", "dead_letters")
    }
    for topic in topics.values():
        kafka_broker.create_topic(topic["name"], 1)
    config = _write_config(tmp_path, proxy_config, topics)
    support = _support("structured_support")
    settings = msgspec.structs.replace(
        support.kafka_settings_for(running_proxy, load_kafka_settings(config)),
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=f"g-{tag}",
    )
    service = ConsumerService(
        settings, build_registry(settings, proxy_api_key=support.master_key())
    )
    await service.start()
    try:
        yield Stack(config, settings, tmp_path)
    finally:
        await service.stop()


def _result(out: str) -> dict[str, Any]:
    """The pretty-printed result JSON `send --wait` ends with."""
    start = out.index("\n{") + 1
    value, _ = json.JSONDecoder().raw_decode(out[start:])
    return dict(value)


async def test_a_styling_request_prints_its_result(stack: Stack) -> None:
    """A structured kind sent with --set fields gets its validated result, exit code 0."""
    code, out, err = await stack.send(
        "styling.requested",
        "--set", "item=red linen shirt",
        "--set", "outfits=2",
        "--wait", "--timeout", "60",
    )  # fmt: skip
    assert code == 0, err
    sent_id = out.splitlines()[0].split()[1]
    result = _result(out)
    assert (result["type"], result["request_id"], result["task"]) == (
        "styling.succeeded",
        sent_id,
        "styling",
    )
    assert result["provider"] and result["styling"]["outfits"]


@pytest.mark.parametrize(
    "broker",
    ["kafka_broker", pytest.param("real_kafka", marks=pytest.mark.real_broker)],
    indirect=True,
)
async def test_a_video_summary_shows_progress_then_the_result(stack: Stack) -> None:
    """A local video given with --input is uploaded, and each progress stage is printed
    before the summary result."""
    video = stack.videos / "clip.mp4"
    video.write_bytes(_support("pipeline_videos").encode_video(60, 320, 180))
    code, out, err = await stack.send(
        "video.summary.requested",
        "--input", f"video={video}",
        "--set", "prompt=Summarise this video in one sentence.",
        "--wait", "--timeout", "60",
    )  # fmt: skip
    assert code == 0, err
    stages = [line.split()[2] for line in out.splitlines() if line.startswith("progress")]
    assert stages[:3] == ["resolving:", "decoding:", "calling:"]
    result = _result(out)
    assert result["type"] == "video.summary.succeeded" and result["frames"] >= 1
    assert result["summary"] and result["cost_usd"] > 0


async def test_a_failure_result_exits_non_zero(stack: Stack) -> None:
    """A video that does not decode gets its failure result printed and exit code 1."""
    broken = stack.videos / "broken.mp4"
    broken.write_bytes(b"\x00 not a video " * 100)
    code, out, _ = await stack.send(
        "video.summary.requested",
        "--input", f"video={broken}",
        "--set", "prompt=Summarise.",
        "--wait", "--timeout", "60",
    )  # fmt: skip
    assert code == 1
    result = _result(out)
    assert (result["type"], result["error"]["type"]) == ("video.summary.failed", "VideoUndecodable")


async def _requests_end(stack: Stack) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.settings.bootstrap_servers)
    await consumer.start()
    try:
        tp = TopicPartition(stack.settings.topics.requests.name, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def test_a_bad_field_is_refused_before_sending(stack: Stack) -> None:
    """An out-of-range field exits 2 naming it, and nothing reaches the requests topic."""
    before = await _requests_end(stack)
    code, out, err = await stack.send(
        "styling.requested", "--set", "item=shirt", "--set", "outfits=99", "--wait"
    )
    assert code == 2
    assert "styling.requested: field `outfits`" in err and "sent" not in out
    assert await _requests_end(stack) == before
