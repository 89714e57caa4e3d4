"""The consumers' and pipelines' pooled HTTP client of the gateway proxy (aiohttp).

Why aiohttp and not httpx: a consumer makes one proxy call per event, and httpx's pool
bookkeeping, anyio and h11 cost more CPU per call than the proxy spends answering it, so one
consumer process could not keep one proxy worker busy; the proxy's own upstream transport
(`proxy.transport._pool`) uses pooled aiohttp for the same reason. Answers are read whole into
a `ProxyResponse`, so nothing downstream holds a connection. Transport failures are
translated by `consumers.proxy_handler.transport_errors`, around `ProxyClient.request`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["ANSWER_GRACE_S", "FileField", "Files", "ProxyClient", "ProxyResponse"]

# How much longer than the budget it sent the client waits for the proxy's answer: the proxy
# answers at its deadline at the latest, after cancelling the provider call in flight.
ANSWER_GRACE_S = 10.0

# One uploaded file of a multipart form: (filename, content, content type).
FileField = tuple[str, bytes, str]
# A form's files by field name; a sequence of pairs repeats a name (`image[]`) in order.
Files = Mapping[str, FileField] | Sequence[tuple[str, FileField]]

_JSON = msgspec.json.Encoder()
_JSON_TYPE = {"content-type": "application/json"}


class ProxyResponse:
    """One proxy answer read whole: status, case-insensitive headers, body bytes."""

    __slots__ = ("content", "headers", "reason", "status")

    def __init__(
        self, status: int, headers: Mapping[str, str], content: bytes, reason: str = ""
    ) -> None:
        self.status = status
        self.headers: CIMultiDictProxy[str] = (
            headers
            if isinstance(headers, CIMultiDictProxy)
            else CIMultiDictProxy(CIMultiDict(headers))
        )
        self.content = content
        self.reason = reason

    def json(self) -> Any:
        """The body decoded as JSON; a ValueError (msgspec.DecodeError) when it is not."""
        return msgspec.json.decode(self.content)


def _form(data: Mapping[str, Any] | None, files: Files) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in (data or {}).items():
        form.add_field(name, str(value))
    pairs = files.items() if isinstance(files, Mapping) else files
    for name, (filename, content, content_type) in pairs:
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form


class ProxyClient:
    """A pooled, keep-alive `aiohttp.ClientSession` of `base_url`, with its key as bearer."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout_s: float = 120.0,
        max_connections: int = 256,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def started(self) -> bool:
        return self._session is not None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s + ANSWER_GRACE_S),
                # Cookies would carry state from one event's request into the next one's.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        content: bytes | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Files | None = None,
        timeout_s: float,
    ) -> ProxyResponse:
        """One request, its answer read whole, within `timeout_s` (connect to last byte).

        `content` is a JSON body already encoded; `json` one to encode; `data` and `files` a
        form (multipart when there are files). Raises aiohttp's errors and TimeoutError."""
        if self._session is None:
            raise RuntimeError("ProxyClient used before start()")
        body: Any = content
        if json is not None:
            body = _JSON.encode(json)
        elif files:
            body = _form(data, files)
        elif data is not None:
            body = {k: str(v) for k, v in data.items()}
        if content is not None or json is not None:
            headers = headers | _JSON_TYPE
        async with self._session.request(
            method,
            self._base_url + path,
            data=body,
            headers=headers,
            # A redirect is an answer like any other (>= 300 is an error to the callers).
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            read = await response.read()
            return ProxyResponse(response.status, response.headers, read, response.reason or "")
