"""The lifecycle a pipeline handler shares with the proxy client it calls through.

Why it exists: every pipeline handler reaches the proxy through one `ProxyCaller` (the chat
route's `ProxyCompletionHandler` or the media routes' `ProxyHttp`), so timeouts, priority,
error mapping and accounting headers stay in one place, and is, to the consumers' runtime,
that client's provider with its delivery count and its start and stop.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from consumers.proxy_handler import ProxyCaller

__all__ = ["Proxied"]

Client = TypeVar("Client", bound=ProxyCaller)


class Proxied(Generic[Client]):
    """A handler whose provider, deliveries and lifecycle are its proxy client's."""

    _proxy: Client

    @property
    def provider(self) -> str:
        return self._proxy.provider

    @property
    def max_deliveries(self) -> int:
        return self._proxy.max_deliveries

    async def start(self) -> None:
        await self._proxy.start()

    async def stop(self) -> None:
        await self._proxy.stop()
