"""The lifecycle a pipeline handler shares with the proxy handler it calls through.

Why it exists: every pipeline handler reaches the proxy through one `ProxyCompletionHandler`
(so timeouts, priority, error mapping and accounting headers stay in one place) and is, to the
consumers' runtime, that handler's provider with its delivery count and its start and stop.
"""

from __future__ import annotations

from consumers.proxy_handler import ProxyCompletionHandler

__all__ = ["Proxied"]


class Proxied:
    """A handler whose provider, deliveries and lifecycle are its proxy handler's."""

    _proxy: ProxyCompletionHandler

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
