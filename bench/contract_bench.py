"""What the OpenAI contract check costs per chat request: CPU microseconds per call of
`RequestContract.chat` (the schema via jsonschema-rs, then the conversation rules), for the
requests the fast path sees.

Why it exists: the check runs on every task request before any provider call, so the claim is
that it adds at most 0.1 ms of CPU to a typical request. The workloads are what clients send:
a system prompt and a question; a user message with an image URL part; the same with the image
inline as a 256 KiB base64 data URL (a photo as the openai SDK sends one); a tool-call round
trip with two declared tools and a json_schema response format; a 20-turn conversation. Each
is parsed from JSON once (as the fast path does) and checked `--calls` times; process CPU time
is divided by the calls.

    python bench/contract_bench.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from proxy.contract import RequestContract  # noqa: E402 - after the path set-up above

BUDGET_US = 100.0
SYSTEM = {"role": "system", "content": "You are a fashion stylist. Answer briefly."}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"Look up the {name.split('_')[1]} of a catalogue item",
            "parameters": {
                "type": "object",
                "properties": {"sku": {"type": "string"}},
                "required": ["sku"],
            },
        },
    }
    for name in ("find_size", "find_colour")
]


def _image(url: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "Caption this product photo in one sentence."},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        ],
    }


def workloads() -> dict[str, dict[str, Any]]:
    photo = base64.b64encode(bytes(range(256)) * 768).decode()  # 192 KiB -> 256 KiB base64
    turns: list[dict[str, Any]] = [SYSTEM]
    for n in range(10):
        turns.append({"role": "user", "content": f"Question {n} about the autumn collection?"})
        turns.append({"role": "assistant", "content": f"Answer {n}: layered wool and linen."})
    return {
        "text (system + user)": {
            "model": "styling",
            "messages": [SYSTEM, {"role": "user", "content": "An outfit around white sneakers?"}],
            "temperature": 0.7,
            "max_tokens": 300,
        },
        "one image URL part": {
            "model": "captioning",
            "messages": [SYSTEM, _image("https://cdn.example.com/looks/4711.jpg")],
            "max_tokens": 120,
        },
        "one 256 KiB data URL image": {
            "model": "captioning",
            "messages": [_image(f"data:image/jpeg;base64,{photo}")],
        },
        "tool-call round trip": {
            "model": "styling",
            "messages": [
                SYSTEM,
                {"role": "user", "content": "Which size and colour is sku 42?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{n}",
                            "type": "function",
                            "function": {"name": name, "arguments": '{"sku": "42"}'},
                        }
                        for n, name in enumerate(("find_size", "find_colour"))
                    ],
                },
                {"role": "tool", "tool_call_id": "call_0", "content": "M"},
                {"role": "tool", "tool_call_id": "call_1", "content": "navy"},
            ],
            "tools": TOOLS,
            "tool_choice": "auto",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "item", "schema": {"type": "object"}},
            },
        },
        "20-turn conversation": {"model": "styling", "messages": turns},
    }


def measure(contract: RequestContract, request: dict[str, Any], calls: int) -> float:
    """CPU microseconds per check."""
    for _ in range(min(1000, calls)):
        contract.chat(request)
    started = time.process_time()
    for _ in range(calls):
        contract.chat(request)
    return (time.process_time() - started) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    started = time.perf_counter()
    contract = RequestContract()
    print(f"compile: {(time.perf_counter() - started) * 1000:.0f} ms (once, at start-up)")
    worst = 0.0
    for name, request in workloads().items():
        parsed = orjson.loads(orjson.dumps(request))
        cost = measure(contract, parsed, args.calls)
        worst = max(worst, cost)
        print(f"{name:28s} {cost:8.1f} us/request  ({len(orjson.dumps(request)):>7} bytes)")
    verdict = "within" if worst <= BUDGET_US else "OVER"
    print(f"worst {worst:.1f} us: {verdict} the {BUDGET_US:.0f} us budget")
    return 0 if worst <= BUDGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
