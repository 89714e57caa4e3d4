"""Fetching an input URL without letting the URL reach inside the network (SSRF).

The rules, each applied to the first URL and again to every redirect hop:
- http and https only;
- the host is resolved once and every address it resolves to is checked against
  `AddressPolicy` (no private, loopback, link-local, shared, reserved, multicast or metadata
  addresses unless allow-listed), so a name with one public and one private record is refused;
- the connection goes to the checked address itself. A second DNS lookup at connect time
  could answer differently (DNS rebinding), so the request URL carries the IP and the original
  name travels in the Host header and, for https, as the TLS server name (httpx's
  `sni_hostname` extension), which is also the name the certificate is verified against. This
  keeps httpx's own transport rather than a custom one: the pinning is two request fields. A
  fresh client per hop keeps a pooled connection made for one name from serving another;
- redirects are followed by hand (never by httpx), at most `max_redirects` of them;
- the body is capped at `max_bytes`: Content-Length is checked first, then bytes as they arrive;
- the whole fetch, redirects and DNS included, has `timeout_s`;
- the response's content type must match one of `accept` (`image/*`, `video/mp4`, `*/*`).

Environment proxies are ignored (`trust_env=False`): a proxy would do its own DNS lookup,
outside these checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import httpx

from artifacts.addresses import AddressPolicy, IPAddress
from artifacts.errors import FetchFailed, FetchRefused, FetchRejected

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FETCH_ERRORS",
    "GuardedFetcher",
    "Resolver",
    "resolve_host",
    "unusable_url",
]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# What `GuardedFetcher.fetch` raises when the URL cannot be used; `unusable_url` says why.
FETCH_ERRORS = (FetchRefused, FetchRejected, FetchFailed)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRIABLE_STATUS = frozenset({408, 425, 429})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# host, port -> the addresses the name resolves to, as text.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def resolve_host(host: str, port: int) -> Sequence[str]:
    """The system resolver, off the event loop (asyncio runs getaddrinfo in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _display(url: httpx.URL) -> str:
    # Userinfo and query strings carry credentials (basic auth, presigned tokens): never shown.
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _accepted(media_type: str, accept: Sequence[str]) -> bool:
    if not media_type:
        return False
    for pattern in accept:
        wanted = pattern.split(";", 1)[0].strip().lower()
        if wanted in {"*/*", "*", media_type}:
            return True
        if wanted.endswith("/*") and media_type.startswith(wanted[:-1]):
            return True
    return False


@contextlib.asynccontextmanager
async def _translated(url: httpx.URL) -> AsyncIterator[None]:
    """The one place httpx's errors become ours."""
    try:
        yield
    except httpx.TimeoutException:
        raise FetchFailed(f"{_display(url)} timed out") from None
    except httpx.HTTPError as exc:
        # httpx's message may quote the request URL, userinfo included: only the error's
        # class is kept.
        raise FetchFailed(f"{_display(url)} failed: {type(exc).__name__}") from None


class GuardedFetcher:
    """Downloads input URLs under the rules in the module docstring; safe to share."""

    def __init__(
        self,
        allow: Sequence[str] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_s: float = 30.0,
        max_redirects: int = 5,
        *,
        resolver: Resolver = resolve_host,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_bytes <= 0 or timeout_s <= 0 or max_redirects < 0:
            raise ValueError("max_bytes and timeout_s must be positive, max_redirects >= 0")
        self._policy = AddressPolicy(allow)
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._resolve = resolver
        # Built once: loading the CA bundle per request would cost more than the request.
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()

    async def fetch(self, url: str, *, accept: Sequence[str]) -> tuple[bytes, str]:
        """The body and its content type (as the server sent it)."""
        if not accept:
            raise ValueError("accept must name at least one media type")
        current = self._parse(url)
        try:
            async with asyncio.timeout(self._timeout_s):
                for redirects in range(self._max_redirects + 1):
                    address = await self._checked_address(current)
                    result = await self._get(current, address, accept)
                    if isinstance(result, httpx.URL):
                        if redirects == self._max_redirects:
                            break
                        current = self._parse_location(current, result)
                        continue
                    return result
        except TimeoutError:
            raise FetchFailed(
                f"fetch of {_display(current)} took longer than {self._timeout_s:g}s"
            ) from None
        raise FetchRefused(
            "too_many_redirects",
            f"{_display(current)} redirected more than {self._max_redirects} times",
        )

    def _parse(self, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise FetchRefused("invalid_url", "the URL cannot be parsed") from None
        return self._check_url(parsed)

    def _parse_location(self, base: httpx.URL, location: httpx.URL) -> httpx.URL:
        return self._check_url(base.join(location))

    def _check_url(self, url: httpx.URL) -> httpx.URL:
        if url.scheme not in _DEFAULT_PORTS:
            raise FetchRefused("scheme", f"only http and https are fetched, not {url.scheme!r}")
        if not url.host:
            raise FetchRefused("invalid_url", f"{_display(url)} has no host")
        if url.port is not None and not 0 < url.port < 65536:
            raise FetchRefused("invalid_url", f"port {url.port} is out of range")
        return url

    async def _checked_address(self, url: httpx.URL) -> IPAddress:
        """Resolve the URL's host and check every address; return the one to connect to."""
        host = url.host
        port = url.port or _DEFAULT_PORTS[url.scheme]
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            addresses = [ipaddress.ip_address(text) for text in await self._lookup(url, port)]
        for address in addresses:
            refusal = self._policy.refusal(host, address)
            if refusal is not None:
                raise FetchRefused(
                    "private_address", f"{_display(url)} resolves to {address}, {refusal}"
                )
        return addresses[0]

    async def _lookup(self, url: httpx.URL, port: int) -> Sequence[str]:
        try:
            found = await self._resolve(url.host, port)
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_AGAIN:
                raise FetchFailed(f"{url.host} could not be resolved yet: {exc}") from None
            raise FetchRejected(None, f"{url.host} does not resolve: {exc}") from None
        except UnicodeError:
            # The IDNA codec refuses the name (an empty or over-long label).
            raise FetchRefused(
                "invalid_url", f"{url.host!r:.80} is not a valid host name"
            ) from None
        except OSError as exc:
            raise FetchFailed(f"{url.host} could not be resolved: {exc}") from None
        if not found:
            raise FetchFailed(f"{url.host} resolved to no address")
        return found

    async def _get(
        self, url: httpx.URL, address: IPAddress, accept: Sequence[str]
    ) -> tuple[bytes, str] | httpx.URL:
        """One hop: the body and content type, or the redirect's target."""
        pinned = url.copy_with(host=str(address))
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Accept": ", ".join(accept),
            # Decoded bytes are what the cap counts; asking for identity keeps a small gzip
            # from expanding on our side at all.
            "Accept-Encoding": "identity",
        }
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        async with (
            _translated(url),
            httpx.AsyncClient(
                verify=self._ssl,
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(self._timeout_s),
            ) as client,
            client.stream("GET", pinned, headers=headers, extensions=extensions) as response,
        ):
            status = response.status_code
            if status in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise FetchRejected(status, f"{_display(url)} redirected without a Location")
                try:
                    return httpx.URL(location)
                except httpx.InvalidURL:
                    raise FetchRefused(
                        "invalid_url", "the redirect target cannot be parsed"
                    ) from None
            if status >= 500 or status in _RETRIABLE_STATUS:
                raise FetchFailed(f"{_display(url)} answered {status}")
            if not 200 <= status < 300:
                raise FetchRejected(status, f"{_display(url)} answered {status}")
            content_type = response.headers.get("content-type", "")
            if not _accepted(_media_type(content_type), accept):
                raise FetchRefused(
                    "content_type",
                    f"{_display(url)} is {_media_type(content_type) or 'untyped'}, "
                    f"expected one of {', '.join(accept)}",
                )
            return await self._read_capped(url, response), content_type

    async def _read_capped(self, url: httpx.URL, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            raise FetchRefused(
                "too_large", f"{_display(url)} declares {declared} bytes, over {self._max_bytes}"
            )
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self._max_bytes:
                raise FetchRefused(
                    "too_large", f"{_display(url)} sent more than {self._max_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def unusable_url(error: FetchRefused | FetchRejected | FetchFailed, noun: str) -> str:
    """What a caller is told when its URL for `noun` (e.g. "image") could not be used: refused
    by the address rules, or not fetched (an error answer, no such host, too slow). The
    fetcher's reasons never quote a URL's userinfo or query, where tokens travel."""
    if isinstance(error, FetchRefused):
        return f"the {noun} URL is refused: {error}"
    return f"the {noun} URL could not be fetched: {error}"
