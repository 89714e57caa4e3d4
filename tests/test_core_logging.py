"""Specifications of the shared logging pipeline: secret redaction and log scopes."""

import asyncio

import structlog
from structlog.testing import capture_logs

from core.logging import SecretRegistry, bind_log_scope, merge_log_scope, redact, reset_log_scope


def test_registered_secret_is_masked_inside_text() -> None:
    """A key registered at start-up never appears in a redacted message."""
    reg = SecretRegistry(["my-very-private-key-123"])
    assert "my-very-private-key-123" not in redact("calling with my-very-private-key-123", reg)


def test_provider_key_shapes_are_masked_without_registration() -> None:
    """Anthropic, OpenAI and Google key shapes are masked even when nobody registered them."""
    reg = SecretRegistry()
    text = (
        "sk-ant-api03-abcdefgh sk-proj-abcdefghijklmnopqrstu AIzaSyA1234567890123456789012 ?key=zzz"
    )
    out = redact(text, reg)
    for leaked in ("sk-ant-api03-abcdefgh", "sk-proj-abcdefghijklmnopqrstu", "AIzaSyA", "zzz"):
        assert leaked not in out


def test_secret_named_fields_are_masked_in_mappings() -> None:
    """Fields named like credentials are masked whatever their value looks like."""
    out = redact({"api_key": "short1", "headers": {"Authorization": "x"}, "model": "m"})
    assert out == {
        "api_key": "[REDACTED]",
        "headers": {"Authorization": "[REDACTED]"},
        "model": "m",
    }


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
