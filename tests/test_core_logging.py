"""Specifications of the shared logging pipeline: secret redaction and log scopes."""

import asyncio
import json
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from core.logging import bind_log_scope, configure_logging, merge_log_scope, reset_log_scope
from core.redact import Redactor


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """Puts structlog's configuration back after a test that installs the pipeline."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_configured_pipeline_masks_what_the_redactor_learns_later(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key added to the process's redactor after logging was configured is masked in lines."""
    redactor = Redactor()
    configure_logging(json=True, redactor=redactor)
    redactor.add("plain-user-key-42b9c1")
    structlog.get_logger("t").warning("failed", detail="upstream said plain-user-key-42b9c1")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["detail"] == "upstream said [REDACTED]"


def test_configured_pipeline_masks_exception_text(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The formatted traceback of a logged exception is scrubbed too."""
    redactor = Redactor(["plain-master-key-77aa01"])
    configure_logging(json=True, redactor=redactor)
    try:
        raise ValueError("key plain-master-key-77aa01 refused")
    except ValueError:
        structlog.get_logger("t").exception("boom")
    assert "plain-master-key-77aa01" not in capsys.readouterr().err


async def test_log_scope_fields_reach_lines_of_the_scope_and_its_tasks_only() -> None:
    """Bound fields appear on lines logged in the scope and in tasks created in it."""
    log = structlog.get_logger("scope-test")

    async def in_task() -> None:
        await asyncio.sleep(0)
        log.info("from_task")

    with capture_logs(processors=[merge_log_scope]) as logs:
        token = bind_log_scope({"event_id": "e1", "offset": 7})
        try:
            task = asyncio.create_task(in_task())
            log.info("inside")
        finally:
            reset_log_scope(token)
        log.info("outside")
        await task
    by_event = {line["event"]: line for line in logs}
    assert by_event["inside"]["event_id"] == "e1"
    assert by_event["from_task"]["offset"] == 7
    assert "event_id" not in by_event["outside"]


def test_nested_log_scopes_merge_and_explicit_fields_win() -> None:
    """An inner scope adds to the outer one; a field given on the line itself is kept."""
    log = structlog.get_logger("scope-test")
    with capture_logs(processors=[merge_log_scope]) as logs:
        outer = bind_log_scope({"topic": "t", "task": "outer"})
        inner = bind_log_scope({"task": "inner"})
        log.info("line", topic="explicit")
        reset_log_scope(inner)
        log.info("after")
        reset_log_scope(outer)
    assert logs[0]["topic"] == "explicit"
    assert logs[0]["task"] == "inner"
    assert logs[1]["task"] == "outer"
