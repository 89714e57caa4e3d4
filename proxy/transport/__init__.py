"""Direct provider calls for the fast path: the wire formats of the providers it owns.

    Transport            owns(deployment, params) / complete(...) / stream(...), start/aclose
    ├── openai           near pass-through
    ├── anthropic        Messages API: LiteLLM's request transform, own answer transform
    └── gemini           generateContent / streamGenerateContent?alt=sse, likewise

Each upstream base URL has one pooled keep-alive session (`_pool`), opened on first use and
closed by `aclose()`. Requests the transport does not own (other providers, features it does
not carry) go through `litellm.acompletion` as before.
"""

from proxy.transport._transport import Transport

__all__ = ["Transport"]
