"""Wire schemas of the gateway's Kafka events.

- `schemas.events`: the event Structs, one tagged union per topic family, over the `Request`
  and `Result` bases every request kind and its results extend;
- `schemas.messages`: OpenAI chat message shapes embedded in events;
- `schemas.cloudevents`: CloudEvents binary-mode headers and W3C trace context;
- `schemas.codec`: one reusable Encoder and one Decoder per topic family;
- `schemas.jsonschema`: the published JSON Schema (events.schema.json); `gateway schema`
  writes and checks it with every kind's events.
"""

from schemas.cloudevents import (
    CloudEventHeaders,
    HeaderList,
    build_headers,
    child_traceparent,
    new_traceparent,
    parse_headers,
    trace_id_of,
)
from schemas.codec import DecodeError, EventCodec, event_type_of
from schemas.events import (
    SCHEMA_VERSION,
    CompletionFailed,
    CompletionRequested,
    CompletionSucceeded,
    DeadLetter,
    DeadLetterEvent,
    ErrorInfo,
    Event,
    Failed,
    GatewayLatency,
    JobProgress,
    RawHeader,
    Request,
    RequestEvent,
    Result,
    ResultEvent,
    StatusEvent,
    utc_now,
)
from schemas.messages import (
    ChatMessage,
    ContentPart,
    ImagePart,
    ImageURL,
    TextPart,
    ToolCall,
    ToolCallFunction,
    Usage,
)

__all__ = [
    "SCHEMA_VERSION",
    "ChatMessage",
    "CloudEventHeaders",
    "CompletionFailed",
    "CompletionRequested",
    "CompletionSucceeded",
    "ContentPart",
    "DeadLetter",
    "DeadLetterEvent",
    "DecodeError",
    "ErrorInfo",
    "Event",
    "EventCodec",
    "Failed",
    "GatewayLatency",
    "HeaderList",
    "ImagePart",
    "ImageURL",
    "JobProgress",
    "RawHeader",
    "Request",
    "RequestEvent",
    "Result",
    "ResultEvent",
    "StatusEvent",
    "TextPart",
    "ToolCall",
    "ToolCallFunction",
    "Usage",
    "build_headers",
    "child_traceparent",
    "event_type_of",
    "new_traceparent",
    "parse_headers",
    "trace_id_of",
    "utc_now",
]
