"""`gateway up` as a real process: the embedded default serves every task through emulators
and round-trips events through Apache Kafka when Java is present (the mock otherwise), the
consumers use REDIS_URL and the configured handlers, a config edit switches a task's provider,
and SIGTERM stops everything, the JVM included."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from child_process import Ready, free_port, on_a_free_port, start_until_ready, stock_litellm
from gateway_support import GATEWAY, ROOT, base_env, child_pids, send_to
from provider_setup import FAKE_KEYS, emulator_env, write_config

from emulators.testing import EmulatorHandle
from services import RedisServer

_KAFKA_LINE = r"^kafka: (.+) on (127\.0\.0\.1:\d+) \((.+)\)$"


def _is_java(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/java")
    except OSError:
        return False


class Gateway:
    """A `gateway up` child process and the lines it printed up to "gateway: ready"."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path

        def start(port: int) -> tuple[int, Ready]:
            argv = [str(GATEWAY), "up", "--port", str(port), *args]
            ready = start_until_ready(
                argv,
                port=port,
                env=env,
                cwd=ROOT,
                stderr=stderr_path,
                ready="gateway: ready",
                timeout_s=60,
            )
            return port, ready

        self.port, ready = on_a_free_port(start)
        self.process, self.lines = ready.process, ready.lines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def printed(self, pattern: str) -> str:
        return self.matched(pattern).group(1)

    def matched(self, pattern: str) -> re.Match[str]:
        for line in self.lines:
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"{pattern!r} not in {self.lines}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def _unreachable_redis() -> str:
    # A port nothing listens on: Redis's default port may have a developer's server behind it.
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`gateway up` with no provider keys, master key, Kafka cluster or reachable Redis."""
    stderr = tmp_path_factory.mktemp("gateway") / "stderr.log"
    gateway = Gateway([], {**base_env(), "REDIS_URL": _unreachable_redis()}, stderr)
    yield gateway
    if gateway.process.poll() is None:
        gateway.terminate()


def _round_trip(servers: str, task: str = "captioning") -> subprocess.CompletedProcess[str]:
    """`gateway send --wait` of one request for `task` to the broker at `servers`."""
    return send_to(servers, "--task", task, "--text", "kafka round trip", "--wait", timeout_s=60)


def test_embedded_default_is_announced(embedded: Gateway) -> None:
    """Without keys the banner says EMBEDDED DEFAULT and lists each emulated provider."""
    assert any("EMBEDDED DEFAULT" in line for line in embedded.lines)
    for provider in ("anthropic", "openai", "gemini"):
        assert embedded.printed(rf"emulated {provider}\s+(http://\S+)").startswith("http://")


@pytest.mark.parametrize(
    ("task", "provider"),
    [
        ("captioning", "anthropic"),
        ("styling", "gemini"),
        ("vision-analysis", "anthropic"),
        ("visibility", "gemini"),
        ("video-summarization", "anthropic"),
        ("video-summarization-gpt-4o", "openai"),
    ],
)
def test_embedded_default_serves_each_task(embedded: Gateway, task: str, provider: str) -> None:
    """Each task is answered with the generated master key by its emulated provider."""
    key = embedded.printed(r"generated for this run: (\S+)")
    emulator = embedded.printed(rf"emulated {provider}\s+(http://\S+)")
    before = httpx.get(f"{emulator}/_emulator/stats").json()["requests"]
    with openai.OpenAI(base_url=f"{embedded.url}/v1", api_key=key, max_retries=0) as sdk:
        completion = sdk.chat.completions.create(
            model=task, messages=[{"role": "user", "content": "hello from the test"}]
        )
    assert f"[{provider}-emulator" in (completion.choices[0].message.content or "")
    assert httpx.get(f"{emulator}/_emulator/stats").json()["requests"] == before + 1


_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
_TOOL = {
    "type": "function",
    "function": {
        "name": "tag_product",
        "description": "Attach catalogue tags to a product",
        "parameters": {
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["tags"],
        },
    },
}
_TASKS = ["captioning", "styling", "vision-analysis", "visibility", "video-summarization"]


@pytest.mark.parametrize("task", _TASKS)
@pytest.mark.parametrize("mode", ["streaming", "json", "tools", "multi-image"])
def test_embedded_default_serves_every_mode_of_every_task(
    embedded: Gateway, task: str, mode: str
) -> None:
    """Streaming, JSON mode, tools and multi-image vision work for each task via `gateway up`."""
    key = embedded.printed(r"generated for this run: (\S+)")
    messages: list[Any] = [{"role": "user", "content": f"{mode} request for {task}"}]
    with openai.OpenAI(base_url=f"{embedded.url}/v1", api_key=key, max_retries=0) as sdk:
        if mode == "streaming":
            stream = sdk.chat.completions.create(model=task, messages=messages, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert "-emulator" in text
        elif mode == "json":
            reply = sdk.chat.completions.create(
                model=task, messages=messages, response_format={"type": "json_object"}
            )
            assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
        elif mode == "tools":
            reply = sdk.chat.completions.create(model=task, messages=messages, tools=[_TOOL])
            calls = reply.choices[0].message.tool_calls or []
            assert [c.function.name for c in calls] == ["tag_product"]
            assert isinstance(json.loads(calls[0].function.arguments)["tags"], list)
        else:
            parts = [{"type": "text", "text": "compare these"}]
            parts += [{"type": "image_url", "image_url": {"url": _PNG}} for _ in range(3)]
            reply = sdk.chat.completions.create(
                model=task, messages=[{"role": "user", "content": parts}]
            )
            assert "3 image(s)" in (reply.choices[0].message.content or "")


def test_embedded_default_needs_neither_redis_nor_postgresql(embedded: Gateway) -> None:
    """Without a reachable Redis or PostgreSQL, the lines say what is kept locally instead."""
    assert embedded.printed(r"^(keys: .*)").endswith(
        "in SQLite at " + str(ROOT / ".gateway" / "gateway.db") + ", then the environment"
    )
    for store in ("dedupe", "budgets"):
        line = embedded.printed(rf"^({store}: .*)")
        assert line.startswith(f"{store}: in-process (Redis at redis://127.0.0.1:"), line
        assert "unreachable; set REDIS_URL" in line


@pytest.mark.real_broker
def test_embedded_default_starts_apache_kafka_when_java_is_present(embedded: Gateway) -> None:
    """With Java on the machine the start-up line names Apache Kafka 4.1.1 and says why."""
    name, _, why = embedded.matched(_KAFKA_LINE).groups()
    assert (name, why) == ("Apache Kafka 4.1.1", "Java found")


@pytest.mark.real_broker
def test_embedded_default_round_trips_an_event_through_apache_kafka(embedded: Gateway) -> None:
    """An event sent with `gateway send --wait` is answered on the results topic via the proxy."""
    name, servers, _ = embedded.matched(_KAFKA_LINE).groups()
    assert name == "Apache Kafka 4.1.1"
    done = _round_trip(servers)
    assert done.returncode == 0, done.stderr
    assert '"type":"completion.succeeded"' in done.stdout
    assert "[anthropic-emulator claude-sonnet-4" in done.stdout
    assert '"provider":"anthropic"' in done.stdout


def test_sigterm_stops_cleanly_without_leftover_children(embedded: Gateway) -> None:
    """SIGTERM makes `gateway up` exit 0, leaving no child process (JVM included), port closed."""
    children = child_pids(embedded.process.pid)
    if embedded.matched(_KAFKA_LINE).group(1).startswith("Apache Kafka"):
        assert {pid for pid in children if _is_java(pid)}, "the broker's JVM is not a child"
    assert embedded.terminate() == 0
    assert not {pid for pid in children if Path(f"/proc/{pid}").exists()}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{embedded.url}/health/liveliness")


def _echo_serves_styling(data: dict[str, Any]) -> None:
    handlers = data["gateway_settings"]["kafka"].setdefault("handlers", [])
    handlers.append({"factory": "consumer_handlers:SlowEcho", "tasks": ["styling"]})


@pytest.fixture(scope="module")
def on_mock(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[Gateway]:
    """`gateway up --kafka mock` with REDIS_URL naming a running Redis, and a config whose
    handlers send styling requests to a test handler instead of the proxy."""
    tmp = tmp_path_factory.mktemp("gateway-mock")
    config = write_config(tmp / "litellm_config.yaml", _echo_serves_styling)
    gateway = Gateway(
        ["--kafka", "mock", "--config", str(config)],
        base_env(REDIS_URL=redis_server.url),
        tmp / "stderr.log",
    )
    yield gateway
    if gateway.process.poll() is None:
        gateway.terminate()


def test_kafka_mock_starts_the_embedded_mock_broker(on_mock: Gateway) -> None:
    """`--kafka mock` picks librdkafka's mock broker and the start-up line says it was asked."""
    name, _, why = on_mock.matched(_KAFKA_LINE).groups()
    assert (name, why) == ("embedded mock broker", "--kafka mock")


def test_kafka_mock_round_trips_an_event(on_mock: Gateway) -> None:
    """The mock broker carries a `gateway send --wait` request and its result."""
    done = _round_trip(on_mock.matched(_KAFKA_LINE).group(2))
    assert done.returncode == 0, done.stderr
    assert '"type":"completion.succeeded"' in done.stdout
    assert '"provider":"anthropic"' in done.stdout


def test_the_configured_handlers_serve_their_tasks(on_mock: Gateway) -> None:
    """A task the config gives to another handler is answered by it, not by the proxy."""
    done = _round_trip(on_mock.matched(_KAFKA_LINE).group(2), task="styling")
    assert done.returncode == 0, done.stderr
    assert '"provider":"echo"' in done.stdout
    assert '"content":"kafka round trip"' in done.stdout


def test_redis_url_backs_dedupe_and_budgets(on_mock: Gateway, redis_server: RedisServer) -> None:
    """With REDIS_URL set, the consumers keep dedupe records, and the proxy its provider
    budgets, in that Redis."""
    for store in ("dedupe", "budgets"):
        assert on_mock.printed(rf"^({store}: .*)") == (
            f"{store}: Redis at {redis_server.url} (REDIS_URL)"
        )


def test_editing_the_config_switches_a_tasks_provider(
    tmp_path: Path, emulators: dict[str, EmulatorHandle]
) -> None:
    """Pointing styling's primary at Anthropic in a config copy makes Anthropic serve it."""

    def to_anthropic(data: dict[str, Any]) -> None:
        for entry in data["model_list"]:
            if entry["model_name"] == "styling":
                entry["litellm_params"] = {
                    "model": "anthropic/claude-3-5-sonnet-20241022",
                    "api_key": "os.environ/ANTHROPIC_API_KEY",
                    "api_base": "os.environ/ANTHROPIC_API_BASE",
                }

    config = write_config(tmp_path / "litellm_config.yaml", to_anthropic)
    env = {
        **base_env(),
        **emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"]),
        "LITELLM_MASTER_KEY": "sk-gw-switch-test-key",
    }
    gateway = Gateway(["--config", str(config)], env, tmp_path / "stderr.log")
    try:
        assert any("real providers" in line for line in gateway.lines)
        with openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key="sk-gw-switch-test-key", max_retries=0
        ) as sdk:
            raw = sdk.chat.completions.with_raw_response.create(
                model="styling", messages=[{"role": "user", "content": "style this look"}]
            )
    finally:
        assert gateway.terminate() == 0
    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert emulators["anthropic"].stats()["by_model"] == {"claude-3-5-sonnet-20241022": 1}
    assert emulators["gemini"].stats()["requests"] == 0
    stderr = gateway.stderr_path.read_text()
    for key in FAKE_KEYS.values():
        assert key not in stderr


def test_stock_litellm_serves_the_same_config(
    tmp_path: Path, emulators: dict[str, EmulatorHandle]
) -> None:
    """Stock `litellm --config` reads litellm_config.yaml too, with the master key enforced."""
    env = {
        **base_env(),
        **emulator_env(emulators["anthropic"], emulators["openai"], emulators["gemini"]),
        "LITELLM_MASTER_KEY": "sk-stock-litellm-test-key",
        "PYTHONPATH": str(ROOT),
    }
    config = write_config(tmp_path / "litellm_config.yaml")
    with stock_litellm(config, env, tmp_path / "stock.log") as url:
        body = {"model": "styling", "messages": [{"role": "user", "content": "hi"}]}
        denied = httpx.post(f"{url}/v1/chat/completions", json=body)
        served = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"authorization": "Bearer sk-stock-litellm-test-key"},
            timeout=30,
        )
    assert denied.status_code == 401
    assert served.status_code == 200
    assert "[gemini-emulator" in served.json()["choices"][0]["message"]["content"]
