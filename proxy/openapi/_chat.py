"""Which tasks the chat route can serve: those whose every deployment LiteLLM can chat with.

Why it exists: the routing table has no task kind, and the fast path accepts any task name;
an image-only task (a `vertex/` model, served by a LiteLLM custom handler that only makes
images) fails at its provider call. A deployment can chat when its model's provider is one of
LiteLLM's own, or its `custom_provider_map` handler implements `acompletion` (LiteLLM's base
class answers "Not implemented yet!" otherwise).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from core.config import read_config_file
from proxy.routing import RoutingTable

__all__ = ["chat_tasks"]


def _custom_handlers(config: Mapping[str, Any]) -> dict[str, Any]:
    entries = (config.get("litellm_settings") or {}).get("custom_provider_map") or []
    handlers: dict[str, Any] = {}
    for entry in entries:
        module_name, _, attribute = str(entry.get("custom_handler", "")).rpartition(".")
        try:
            handlers[str(entry["provider"])] = getattr(
                importlib.import_module(module_name), attribute
            )
        except (ImportError, AttributeError, KeyError, ValueError):
            # LiteLLM refuses such an entry at its own start-up; here it only means no chat.
            continue
    return handlers


def chat_tasks(routing: RoutingTable, config_path: str) -> list[str]:
    """The tasks every deployment of which LiteLLM can send a chat completion to."""
    import litellm  # noqa: PLC0415 - heavy; the server has imported it already
    from litellm.llms.custom_llm import CustomLLM  # noqa: PLC0415

    native = {getattr(p, "value", p) for p in litellm.provider_list}
    handlers = _custom_handlers(read_config_file(config_path))

    def chats(model: str) -> bool:
        prefix = model.split("/", 1)[0]
        handler = handlers.get(prefix)
        if handler is not None:
            return type(handler).acompletion is not CustomLLM.acompletion
        return prefix in native

    found = []
    for task in routing.tasks():
        route = routing.get(task)
        if route is not None and all(chats(d.model) for d in route.deployments):
            found.append(task)
    return found
