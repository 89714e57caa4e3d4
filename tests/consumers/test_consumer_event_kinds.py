"""A request kind the runtime never heard of, added by configuration alone (label_kind.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from consumer_support import (
    ConsumerProcess,
    TopicReader,
    fast_settings,
    request,
    send_requests,
    write_config,
)
from label_kind import LABEL, LabelFailed, LabelRequested, LabelSucceeded

from consumers import COMPLETION, Completion, HandlerContext, HandlerRegistry, handler
from consumers.errors import NoHandler
from consumers.handler_config import build_registry
from consumers.settings import HandlerSpec, load_kafka_settings
from core.config import ConfigError
from schemas import CompletionRequested, CompletionSucceeded, EventCodec

CODEC = EventCodec(requests=[LabelRequested], results=[LabelSucceeded, LabelFailed])
LABELLER = {"factory": "label_kind:TitleLabeller", "tasks": ["labeling"]}


def _label(title: str, task: str = "labeling") -> LabelRequested:
    return LabelRequested(
        event_id=str(uuid.uuid4()), subject=str(uuid.uuid4()), task=task, title=title
    )


async def test_a_second_kind_configured_alone_gets_its_results(
    event_broker: Any, tmp_path: Path
) -> None:
    """A config naming a new kind's handler beside a completion handler serves both kinds."""
    settings = fast_settings(
        event_broker,
        handlers=[
            HandlerSpec(**LABELLER, options={"prefix": "tag:", "max_labels": 2}),
            HandlerSpec(factory="consumer_handlers:SlowEcho", tasks=["*"]),
        ],
    )
    config = write_config(settings, tmp_path / "config.yaml")
    labels = [_label("Red Silk Dress"), _label("flaky wool coat")]
    chat = request("hello")
    proc = await ConsumerProcess(config, handler=None, options={}, log=tmp_path / "c.log").start()
    try:
        servers = event_broker.bootstrap_servers
        await send_requests(servers, settings.topics.requests.name, CODEC, [*labels, chat])
        async with TopicReader(servers, settings.topics.results.name) as reader:
            await reader.until(lambda rd: len(rd.records) >= 3)
            results = {
                r.request_id: r for r in (CODEC.decode_result(x.value) for x in reader.records)
            }
    finally:
        await proc.stop()
    dress, coat = results[labels[0].event_id], results[labels[1].event_id]
    assert isinstance(dress, LabelSucceeded) and dress.labels == ["tag:red", "tag:silk"]
    assert dress.labeller == settings.group_id and dress.attempts == 1
    assert isinstance(coat, LabelSucceeded) and coat.labels == ["tag:flaky", "tag:wool"]
    assert coat.attempts == 2  # its first attempt failed retriably
    answer = results[chat.event_id]
    assert isinstance(answer, CompletionSucceeded) and answer.content == "hello"


async def test_a_kind_without_a_handler_for_its_task_fails_with_its_own_result(
    event_broker: Any, start_service: Any
) -> None:
    """A known kind for an unserved task gets the kind's failure result and a dead letter."""
    settings = fast_settings(
        event_broker, handlers=[HandlerSpec(**LABELLER, options={"prefix": ""})]
    )
    registry = build_registry(settings, proxy_api_key=None)
    await start_service(settings, registry)
    event = _label("Linen Shirt", task="unknown-task")
    servers = event_broker.bootstrap_servers
    await send_requests(servers, settings.topics.requests.name, CODEC, [event])
    async with TopicReader(servers, settings.topics.results.name) as results:
        await results.until(lambda rd: len(rd.records) >= 1)
        failed = CODEC.decode_result(results.records[0].value)
    async with TopicReader(servers, settings.topics.dead_letters.name) as letters:
        await letters.until(lambda rd: len(rd.records) >= 1)
        letter = EventCodec().decode_dead_letter(letters.records[0].value)
    assert isinstance(failed, LabelFailed) and failed.request_id == event.event_id
    assert failed.error.type == "NoHandler" and "unknown-task" in failed.error.message
    assert letter.reason == "no_handler" and letter.value == CODEC.encode(event)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"prefix": "x", "max_labels": 0}, "max_labels"),
        ({"prefix": "x", "colour": 1}, "colour"),
        ({}, "prefix"),
    ],
)
def test_bad_handler_options_stop_start_up_naming_them(
    tmp_path: Path, options: dict[str, Any], named: str
) -> None:
    """Options are converted into the factory's typed Options at start-up, errors named."""
    config = tmp_path / "config.yaml"
    body = {"gateway_settings": {"kafka": {"handlers": [{**LABELLER, "options": options}]}}}
    config.write_bytes(msgspec.json.encode(body))
    with pytest.raises(ConfigError, match=named) as raised:
        build_registry(load_kafka_settings(config), proxy_api_key=None)
    assert "handlers[0] (label_kind:TitleLabeller)" in str(raised.value)


def test_two_handlers_for_one_task_of_one_kind_are_refused() -> None:
    """Two entries serving the same (kind, task) are a configuration error, not a race."""
    settings = load_kafka_settings(None)
    twice = [HandlerSpec(**LABELLER, options={"prefix": ""})] * 2
    with pytest.raises(ConfigError, match="two handlers for task 'labeling'"):
        build_registry(msgspec.structs.replace(settings, handlers=twice), proxy_api_key=None)


def test_an_unknown_factory_is_refused_at_start_up() -> None:
    """A factory that does not import is named in the start-up error."""
    spec = HandlerSpec(factory="label_kind:NoSuchHandler")
    settings = msgspec.structs.replace(load_kafka_settings(None), handlers=[spec])
    with pytest.raises(ConfigError, match="label_kind:NoSuchHandler"):
        build_registry(settings, proxy_api_key=None)


async def test_a_decorated_function_serves_its_kind_and_task_only() -> None:
    """`@handler` makes a function a handler; the registry routes by kind, then task."""

    @handler(COMPLETION, provider="upper")
    async def shout(event: CompletionRequested, ctx: HandlerContext) -> Completion:
        text = event.messages[0].content
        return Completion(provider="upper", model="m", content=str(text).upper())

    registry = HandlerRegistry({"captioning": shout})
    chat = request("hi", task="captioning")
    found = registry.resolve(chat)
    ctx = HandlerContext(attempt=1, traceparent=None, report=_no_progress)
    assert (await found.handle(chat, ctx)).content == "HI"
    with pytest.raises(NoHandler):
        registry.resolve(request("hi", task="styling"))
    with pytest.raises(KeyError):
        registry.kind_of(_label("Scarf"))  # LABEL was never registered: not decodable either
    assert registry.kinds() == [COMPLETION] and LABEL not in registry.kinds()


async def _no_progress(stage: str, progress: float, message: str) -> None:
    return None
