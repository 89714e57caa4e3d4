"""What replaces an event the broker refused for good: a smaller event that says why.

Why: a refused record never settles and, unreplaced, stalls its partition; a small event with
the same ids settles it and tells its reader what happened. A successful result becomes a
non-retriable failure naming the sizes; a dead letter becomes its minimal form
(`consumers.deadletters.minimal_dead_letter`). A failure, or a minimal letter, has nothing
smaller: its refusal means the topic itself is unusable.
"""

from __future__ import annotations

import structlog

from consumers.deadletters import minimal_dead_letter
from consumers.errors import BrokerError, RecordTooLarge
from schemas import DeadLetter, ErrorInfo, Event, EventCodec, Failed, Result

__all__ = ["failed_result", "fallback"]

_log = structlog.get_logger(__name__)


def fallback(event: Event, refusal: BrokerError, codec: EventCodec) -> Event | None:
    """What to send in place of `event` after the broker refused it alone, or None when there
    is nothing smaller to say (a failure or a minimal dead letter refused: the topic itself is
    unusable, which the caller retries and logs)."""
    if isinstance(event, DeadLetter):
        if event.value is None and event.key is None and not event.headers:
            return None
        _log.warning("consumer.dead_letter_refused", error=refusal.upstream)
        return minimal_dead_letter(event, refusal)
    if not isinstance(event, Result) or isinstance(event, Failed):
        return None
    size = len(codec.encode(event))
    _log.warning(
        "consumer.result_refused", request_id=event.request_id, size=size, error=refusal.upstream
    )
    too_large = isinstance(refusal, RecordTooLarge)
    return failed_result(
        codec,
        event,
        "result_too_large" if too_large else "result_refused",
        f"result of {size} bytes refused by the broker: {refusal.upstream}",
    )


def failed_result(codec: EventCodec, result: Result, code: str, message: str) -> Failed:
    """The small failure (of `result`'s kind) published in place of `result`: same ids, so the
    caller matches it to its request; not retriable, since the same answer would be refused
    again."""
    return codec.failure_type_of(result)(
        event_id=result.event_id,
        request_id=result.request_id,
        subject=result.subject,
        task=result.task,
        occurred_at=result.occurred_at,
        error=ErrorInfo(type=code, message=message[:500], retriable=False),
        attempts=result.attempts,
    )
