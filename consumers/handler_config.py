"""The handlers `gateway_settings.kafka` declares, built and validated once at start-up.

Why its own module: every entry point (`gateway up`, `gateway consume`, tests) builds the same
registry from the same settings, so the configured handlers cannot drift between them, and a
bad entry (unknown factory, unknown or ill-typed option, two handlers for one task) stops the
process at start-up with a message naming it, never at the first event.

    gateway_settings:
      kafka:
        handlers:
          - factory: consumers.handler_config:proxy_completions   # the default when none
            tasks: ["*"]
          - factory: my_package.tryon:TryOnHandler
            tasks: [virtual_tryon]
            options: {model: tryon-v2, max_images: 4}

A factory is any callable "package.module:name" (a class or a function). One whose first
parameter is annotated with a msgspec Struct gets its options converted strictly into that
type, and `resources` (a `HandlerResources`) as the second argument when it takes one; any
other factory is called with the options as keyword arguments (how `--handler-option`
values reach test handlers).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from consumers.handlers import AnyHandler, HandlerRegistry, load_handler_factory
from consumers.proxy_handler import ProxyCompletionHandler
from consumers.settings import HandlerSpec, KafkaSettings
from core.config import ConfigError
from core.redact import Redactor

__all__ = ["HandlerResources", "ProxyCompletionsOptions", "build_registry", "proxy_completions"]


@dataclass(frozen=True, slots=True)
class HandlerResources:
    """What the process gives every handler factory: its settings, the proxy's key and the
    process's redactor (a handler adds the secrets it uses, and scrubs what it reports)."""

    settings: KafkaSettings
    # The gateway key the proxy handler sends; read once by the entry point, never logged.
    proxy_api_key: str | None
    redactor: Redactor
    # The config file the process started with (handlers that read other sections of it, such
    # as gateway_settings.artifacts, default to it), and the environment snapshot its
    # `os.environ/NAME` references resolve against (the composition root's snapshot; None:
    # the process environment, as in tests and embedding programs).
    config_path: Path | None = None
    environ: Mapping[str, str] | None = None
    # Hosts the process itself vouches for (the provider emulators `gateway up` started on
    # loopback, whose output links the guarded fetcher would otherwise refuse).
    fetch_allow: tuple[str, ...] = ()


class ProxyCompletionsOptions(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """Per-entry overrides of `gateway_settings.kafka.proxy` for the proxy handler."""

    url: str | None = None
    timeout_s: float | None = None
    provider: str | None = None


def proxy_completions(
    options: ProxyCompletionsOptions, resources: HandlerResources
) -> ProxyCompletionHandler:
    """The chat-completion handler that asks the gateway's proxy (the default handler)."""
    proxy = resources.settings.proxy
    changes = {k: v for k, v in msgspec.structs.asdict(options).items() if v is not None}
    return ProxyCompletionHandler.from_settings(
        msgspec.structs.replace(proxy, **changes),
        api_key=resources.proxy_api_key,
        redactor=resources.redactor,
    )


def build_registry(
    settings: KafkaSettings,
    *,
    proxy_api_key: str | None,
    handler_options: Mapping[str, str] | None = None,
    redactor: Redactor | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    fetch_allow: Sequence[str] = (),
) -> HandlerRegistry:
    """The registry of the configured handlers; raises ConfigError naming a bad entry.

    `handler_options` are extra options for the shorthand `handler:` (command-line values);
    `redactor` is the process's (a fresh one when None, as in tests).
    """
    resources = HandlerResources(
        settings=settings,
        proxy_api_key=proxy_api_key,
        redactor=redactor or Redactor(),
        config_path=config_path,
        environ=environ,
        fetch_allow=tuple(fetch_allow),
    )
    specs = list(settings.handlers)
    if settings.handler is not None:
        specs = [HandlerSpec(factory=settings.handler, options=dict(handler_options or {}))]
    elif not specs:
        specs = [HandlerSpec(factory="consumers.handler_config:proxy_completions")]
    registry = HandlerRegistry()
    for index, spec in enumerate(specs):
        where = f"gateway_settings.kafka.handlers[{index}] ({spec.factory})"
        handler = _build(spec, resources, where)
        for task in spec.tasks:
            try:
                registry.register(task, handler)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {exc}") from exc
    return registry


def _build(spec: HandlerSpec, resources: HandlerResources, where: str) -> AnyHandler:
    try:
        factory = load_handler_factory(spec.factory)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot load the factory: {exc}") from exc
    options_type, wants_resources = _signature_of(factory)
    try:
        if options_type is not None:
            try:
                options = msgspec.convert(spec.options, options_type, strict=False)
            except msgspec.ValidationError as exc:
                raise ConfigError(f"{where}: options: {exc}") from exc
            built = factory(options, resources) if wants_resources else factory(options)
        else:
            built = factory(**spec.options)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if not callable(getattr(built, "handle", None)):
        raise ConfigError(f"{where}: the factory returned {type(built).__qualname__}, no handler")
    return built  # type: ignore[no-any-return]  # checked structurally just above


def _signature_of(factory: Any) -> tuple[type[msgspec.Struct] | None, bool]:
    """The Struct type of a factory's first parameter (None: untyped keyword options), and
    whether it takes a second (the resources)."""
    target: Any = factory
    if isinstance(factory, type):
        target = target.__init__  # a class's parameters are its __init__'s
    params = [
        p
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params:
        return None, False
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):
        return None, False
    first = hints.get(params[0].name)
    if isinstance(first, type) and issubclass(first, msgspec.Struct):
        return first, len(params) > 1
    return None, False
