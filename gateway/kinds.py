"""Which request kinds the gateway serves and publishes, found without building any handler.

Why here: `gateway send` and the published JSON Schema must know every kind, yet kinds are
declared by handler packages (`consumers.kinds.EventKind` next to each handler) that `schemas`
and `consumers` may not import. The composition root reads the configured handlers
(`gateway_settings.kafka.handlers`) and asks each factory, statically, which kind it serves:

1. the factory's (or, for a function, its return type's) `kind` class attribute;
2. a class whose generic base names a request Struct (`StructuredHandler[CaptionRequested,
   ...]`): the module-level kind of that request;
3. otherwise every kind its module declares (an `EventKind` or a tuple of them at module
   level), and chat completion when it declares none (what the runtime assumes too).

Nothing is instantiated: a handler's constructor may read files or need a running proxy.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from consumers.handlers import load_handler_factory
from consumers.kinds import COMPLETION, EventKind
from consumers.settings import HandlerSpec, KafkaSettings, load_kafka_settings
from core.config import ConfigError
from schemas import Request

__all__ = [
    "DEFAULT_FACTORY",
    "PRODUCT_KIND_MODULES",
    "ServedKind",
    "configured_kinds",
    "kinds_of_factory",
    "kinds_of_module",
    "product_kinds",
    "published_kinds",
]

AnyKind = EventKind[Any, Any]

DEFAULT_FACTORY = "consumers.handler_config:proxy_completions"

# The product's kind modules: published in the schema even when litellm_config.yaml leaves
# their handlers commented out (they need directories or stores a default set-up lacks).
PRODUCT_KIND_MODULES: tuple[str, ...] = (
    "pipelines.structured",
    "pipelines.summaries",
    "pipelines.images",
    "pipelines.vision",
    "pipelines.training",
    "pipelines.videos",
)


@dataclass(frozen=True, slots=True)
class ServedKind:
    """A kind the configured handlers serve, with the tasks and factories serving it."""

    kind: AnyKind
    tasks: tuple[str, ...]
    factories: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.kind.name


def kinds_of_module(module: ModuleType) -> list[AnyKind]:
    """Every kind `module` declares at module level (EventKinds and tuples of them)."""
    found: dict[str, AnyKind] = {}
    for value in vars(module).values():
        values = value if isinstance(value, tuple) else (value,)
        for one in values:
            if isinstance(one, EventKind):
                found.setdefault(one.name, one)
    return list(found.values())


def _declared_kind(target: Any) -> AnyKind | None:
    kind = getattr(target, "kind", None)
    return kind if isinstance(kind, EventKind) else None


def _generic_requests(cls: type) -> set[type[Request]]:
    """Request Structs named as type arguments of `cls`'s generic bases (its whole MRO)."""
    found: set[type[Request]] = set()
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            for arg in typing.get_args(base):
                if isinstance(arg, type) and issubclass(arg, Request):
                    found.add(arg)
    return found


def _returned_class(factory: Any) -> type | None:
    """The class a function factory is annotated to return, when it says."""
    try:
        returned = typing.get_type_hints(factory).get("return")
    except (NameError, TypeError):
        return None
    return returned if isinstance(returned, type) else None


def kinds_of_factory(spec: str) -> list[AnyKind]:
    """The kinds the handler `spec` ("module:name") builds serve; ConfigError when it cannot
    be loaded."""
    try:
        factory = load_handler_factory(spec)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{spec}: cannot load the factory: {exc}") from exc
    cls = factory if isinstance(factory, type) else _returned_class(factory)
    for target in (factory, cls):
        if (kind := _declared_kind(target)) is not None:
            return [kind]
    module = inspect.getmodule(cls if cls is not None else factory)
    declared = kinds_of_module(module) if module is not None else []
    if cls is not None:
        requests = _generic_requests(cls)
        matched = [k for k in declared if k.request in requests]
        if matched:
            return matched
    # A factory module declaring no kind builds chat-completion handlers (the runtime's
    # default for a handler without `kind`).
    return declared or [COMPLETION]


def _specs(settings: KafkaSettings) -> list[HandlerSpec]:
    """The handler entries the runtime builds (the same choice as `build_registry`)."""
    if settings.handler is not None:
        return [HandlerSpec(factory=settings.handler)]
    return list(settings.handlers) or [HandlerSpec(factory=DEFAULT_FACTORY)]


def configured_kinds(settings: KafkaSettings) -> list[ServedKind]:
    """The kinds the configured handlers serve, in config order, chat completion first."""
    tasks: dict[str, list[str]] = {COMPLETION.name: []}
    factories: dict[str, list[str]] = {COMPLETION.name: []}
    kinds: dict[str, AnyKind] = {COMPLETION.name: COMPLETION}
    for spec in _specs(settings):
        for kind in kinds_of_factory(spec.factory):
            kinds.setdefault(kind.name, kind)
            tasks.setdefault(kind.name, []).extend(spec.tasks)
            factories.setdefault(kind.name, []).append(spec.factory)
    return [
        ServedKind(
            kind=kind,
            tasks=tuple(dict.fromkeys(tasks[name])),
            factories=tuple(dict.fromkeys(factories[name])),
        )
        for name, kind in kinds.items()
    ]


def product_kinds(modules: Iterable[str] = PRODUCT_KIND_MODULES) -> list[AnyKind]:
    """The kinds the product's kind modules declare. A listed module that is not installed is
    skipped (a slim deployment may leave a pipeline out); any other import error is raised."""
    found: dict[str, AnyKind] = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise  # the module exists but something it imports does not: a real error
            continue
        for kind in kinds_of_module(module):
            found.setdefault(kind.name, kind)
    return list(found.values())


def published_kinds(
    config: Path | None, modules: Sequence[str] = PRODUCT_KIND_MODULES
) -> list[AnyKind]:
    """Every kind the schema publishes: those `config`'s handlers serve, then the product's."""
    served = [s.kind for s in configured_kinds(load_kafka_settings(config))]
    found = {k.name: k for k in served}
    for kind in product_kinds(modules):
        found.setdefault(kind.name, kind)
    return list(found.values())
