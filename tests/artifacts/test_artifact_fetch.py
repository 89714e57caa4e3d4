"""Guarded fetches against a real HTTP server on 127.0.0.1: internal targets refused before
any connection, allow-listed ones served, and the size, type and redirect limits enforced.

Where a test needs a host name to resolve to a given address, it passes a resolver that
answers like DNS would; the fetch itself is real."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence

import pytest
import trustme
from artifact_http_server import Route, tiny_server

from artifacts import FetchFailed, FetchRefused, FetchRejected, GuardedFetcher

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100
IMAGE = Route(headers=(("Content-Type", "image/png"),), body=PNG)


class FakeDns:
    """A resolver answering from a table, as DNS would, recording every name it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def dns(table: dict[str, list[str]]) -> FakeDns:
    return FakeDns(table)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/image.png",
        "http://10.0.0.1/image.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/image.png",
        "http://[::ffff:127.0.0.1]/image.png",
        "https://[fd00:ec2::254]/",
        "http://100.64.0.1/",
        "http://2130706433/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://0/",
    ],
)
async def test_urls_to_internal_addresses_are_refused(url: str) -> None:
    """Loopback, private, metadata, IPv6 loopback, shared, and numeric spellings of them."""
    with pytest.raises(FetchRefused) as refused:
        await GuardedFetcher().fetch(url, accept=["image/*"])
    assert refused.value.reason == "private_address"


async def test_localhost_is_refused_after_resolution() -> None:
    """The system resolver's answer for localhost is checked and refused."""
    with pytest.raises(FetchRefused, match="resolves to") as refused:
        await GuardedFetcher().fetch("http://localhost/image.png", accept=["image/*"])
    assert refused.value.reason == "private_address"


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    """A public-looking name whose record points at 10.0.0.7 is refused, naming the address."""
    fetcher = GuardedFetcher(resolver=dns({"cdn.example.com": ["10.0.0.7"]}))
    with pytest.raises(FetchRefused, match=r"10\.0\.0\.7") as refused:
        await fetcher.fetch("https://cdn.example.com/a.png", accept=["image/*"])
    assert refused.value.reason == "private_address"


async def test_every_resolved_address_is_checked() -> None:
    """One public record does not excuse a private one beside it."""
    fetcher = GuardedFetcher(resolver=dns({"cdn.example.com": ["93.184.216.34", "127.0.0.1"]}))
    with pytest.raises(FetchRefused) as refused:
        await fetcher.fetch("https://cdn.example.com/a.png", accept=["image/*"])
    assert refused.value.reason == "private_address"


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http:///a.png"])
async def test_urls_without_a_usable_host_or_port_are_refused(url: str) -> None:
    """A port out of range or a missing host is invalid_url."""
    with pytest.raises(FetchRefused) as refused:
        await GuardedFetcher().fetch(url, accept=["*/*"])
    assert refused.value.reason == "invalid_url"


async def test_a_name_that_does_not_exist_is_rejected_not_retried() -> None:
    """NXDOMAIN is a FetchRejected that is not retriable."""
    with pytest.raises(FetchRejected, match="does not resolve") as rejected:
        await GuardedFetcher(resolver=dns({})).fetch("https://nowhere.example/", accept=["*/*"])
    assert not rejected.value.retriable


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/"])
async def test_schemes_other_than_http_are_refused(url: str) -> None:
    """Only http and https are fetched."""
    with pytest.raises(FetchRefused) as refused:
        await GuardedFetcher().fetch(url, accept=["*/*"])
    assert refused.value.reason == "scheme"


async def test_an_allow_listed_local_server_serves_the_bytes() -> None:
    """With 127.0.0.1 allow-listed the body and its content type come back."""
    async with tiny_server({"/a.png": IMAGE}) as server:
        body, content_type = await GuardedFetcher(allow=["127.0.0.1"]).fetch(
            server.url("/a.png"), accept=["image/*"]
        )
    assert (body, content_type) == (PNG, "image/png")


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host() -> None:
    """A name only the fetcher's resolver knows is reached, and the server sees that name."""
    resolver = dns({"files.example": ["127.0.0.1"]})
    async with tiny_server({"/a.png": IMAGE}) as server:
        fetcher = GuardedFetcher(allow=["127.0.0.1"], resolver=resolver)
        body, _ = await fetcher.fetch(
            server.url("/a.png", host="files.example"), accept=["image/*"]
        )
    assert body == PNG
    assert server.requests[0][1]["host"] == f"files.example:{server.port}"
    assert resolver.asked == ["files.example"]


async def test_a_redirect_to_a_private_address_is_refused() -> None:
    """The hop to 10.0.0.1 is checked like the first URL and refused."""
    routes = {"/go": Route(status=302, headers=(("Location", "http://10.0.0.1/a.png"),))}
    async with tiny_server(routes) as server:
        with pytest.raises(FetchRefused, match=r"10\.0\.0\.1") as refused:
            await GuardedFetcher(allow=["127.0.0.1"]).fetch(server.url("/go"), accept=["image/*"])
    assert refused.value.reason == "private_address"


async def test_a_redirect_to_a_name_resolving_privately_is_refused() -> None:
    """A hop to a name whose record is 192.168.0.5 is refused after resolution."""
    resolver = dns({"evil.example": ["192.168.0.5"]})
    routes = {"/go": Route(status=301, headers=(("Location", "http://evil.example/x"),))}
    async with tiny_server(routes) as server:
        fetcher = GuardedFetcher(allow=["127.0.0.1"], resolver=resolver)
        with pytest.raises(FetchRefused) as refused:
            await fetcher.fetch(server.url("/go"), accept=["image/*"])
    assert refused.value.reason == "private_address"


async def test_a_redirect_to_another_scheme_is_refused() -> None:
    """A hop to file:// is refused for its scheme."""
    routes = {"/go": Route(status=307, headers=(("Location", "file:///etc/passwd"),))}
    async with tiny_server(routes) as server:
        with pytest.raises(FetchRefused) as refused:
            await GuardedFetcher(allow=["127.0.0.1"]).fetch(server.url("/go"), accept=["*/*"])
    assert refused.value.reason == "scheme"


async def test_allowed_redirects_are_followed() -> None:
    """A relative redirect within the limit arrives at the image."""
    routes = {"/go": Route(status=302, headers=(("Location", "/a.png"),)), "/a.png": IMAGE}
    async with tiny_server(routes) as server:
        body, _ = await GuardedFetcher(allow=["127.0.0.1"]).fetch(
            server.url("/go"), accept=["image/png"]
        )
    assert body == PNG


async def test_a_redirect_chain_past_the_limit_is_refused() -> None:
    """With max_redirects=3 the fourth redirect is refused and never followed."""
    routes = {f"/r{n}": Route(status=302, headers=(("Location", f"/r{n + 1}"),)) for n in range(10)}
    async with tiny_server(routes) as server:
        fetcher = GuardedFetcher(allow=["127.0.0.1"], max_redirects=3)
        with pytest.raises(FetchRefused) as refused:
            await fetcher.fetch(server.url("/r0"), accept=["image/*"])
    assert refused.value.reason == "too_many_redirects"
    assert [path for path, _ in server.requests] == ["/r0", "/r1", "/r2", "/r3"]


async def test_a_declared_oversized_body_is_refused() -> None:
    """A Content-Length over max_bytes is refused as too_large."""
    routes = {"/big": Route(headers=(("Content-Type", "image/png"),), body=b"x" * 2048)}
    async with tiny_server(routes) as server:
        with pytest.raises(FetchRefused, match="declares 2048") as refused:
            await GuardedFetcher(allow=["127.0.0.1"], max_bytes=1024).fetch(
                server.url("/big"), accept=["image/*"]
            )
    assert refused.value.reason == "too_large"


async def test_an_undeclared_oversized_body_is_cut_off_while_streaming() -> None:
    """A body without Content-Length is refused once the bytes read pass max_bytes."""
    routes = {"/big": Route(headers=(("Content-Type", "video/mp4"),), body_size=4 * 1024 * 1024)}
    async with tiny_server(routes) as server:
        with pytest.raises(FetchRefused, match="sent more than") as refused:
            await GuardedFetcher(allow=["127.0.0.1"], max_bytes=256 * 1024).fetch(
                server.url("/big"), accept=["video/mp4"]
            )
    assert refused.value.reason == "too_large"


async def test_a_body_at_the_limit_is_accepted() -> None:
    """Exactly max_bytes, streamed without Content-Length, is not too large."""
    routes = {"/v": Route(headers=(("Content-Type", "video/mp4"),), body_size=100_000)}
    async with tiny_server(routes) as server:
        body, _ = await GuardedFetcher(allow=["127.0.0.1"], max_bytes=100_000).fetch(
            server.url("/v"), accept=["video/mp4", "video/*"]
        )
    assert len(body) == 100_000


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None])
async def test_a_content_type_other_than_asked_is_refused(content_type: str | None) -> None:
    """An HTML page (or an untyped body) where an image was asked for is refused."""
    headers = (("Content-Type", content_type),) if content_type else ()
    async with tiny_server({"/a.png": Route(headers=headers, body=b"<html>")}) as server:
        with pytest.raises(FetchRefused) as refused:
            await GuardedFetcher(allow=["127.0.0.1"]).fetch(
                server.url("/a.png"), accept=["image/*"]
            )
    assert refused.value.reason == "content_type"


async def test_server_errors_are_retriable_and_client_errors_are_not() -> None:
    """503 is a retriable FetchFailed, 404 a FetchRejected that is not."""
    routes = {"/busy": Route(status=503), "/gone": Route(status=404)}
    fetcher = GuardedFetcher(allow=["127.0.0.1"])
    async with tiny_server(routes) as server:
        with pytest.raises(FetchFailed) as failed:
            await fetcher.fetch(server.url("/busy"), accept=["*/*"])
        with pytest.raises(FetchRejected) as rejected:
            await fetcher.fetch(server.url("/gone"), accept=["*/*"])
    assert failed.value.retriable
    assert not rejected.value.retriable
    assert rejected.value.status_code == 404


async def test_a_refused_connection_is_a_retriable_failure() -> None:
    """Nothing listening on the port is FetchFailed, retriable."""
    async with tiny_server({}) as server:
        port = server.port
    with pytest.raises(FetchFailed) as failed:
        await GuardedFetcher(allow=["127.0.0.1"]).fetch(f"http://127.0.0.1:{port}/", accept=["*/*"])
    assert failed.value.retriable


async def test_errors_never_show_the_urls_credentials() -> None:
    """Userinfo and query strings are left out of every message."""
    url = "http://alice:hunter2@10.0.0.1/a.png?token=s3cr3t"
    with pytest.raises(FetchRefused) as refused:
        await GuardedFetcher().fetch(url, accept=["image/*"])
    async with tiny_server({}) as server:
        closed = f"http://alice:hunter2@127.0.0.1:{server.port}/a.png?token=s3cr3t"
    with pytest.raises(FetchFailed) as failed:
        await GuardedFetcher(allow=["127.0.0.1"]).fetch(closed, accept=["image/*"])
    for message in (str(refused.value), str(failed.value)):
        assert "/a.png" in message
        for secret in ("alice", "hunter2", "s3cr3t"):
            assert secret not in message


async def test_a_server_that_never_answers_is_a_retriable_timeout() -> None:
    """Past timeout_s the fetch fails retriably, naming the timeout."""
    async with tiny_server({"/slow": Route(hang=True)}) as server:
        with pytest.raises(FetchFailed, match=r"timed out|longer than") as failed:
            await GuardedFetcher(allow=["127.0.0.1"], timeout_s=0.3).fetch(
                server.url("/slow"), accept=["*/*"]
            )
    assert failed.value.retriable


def _tls(name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


async def test_https_to_a_pinned_address_sends_and_verifies_the_name() -> None:
    """Over TLS the server is asked for files.example (SNI) and its certificate is accepted."""
    server_context, client_context = _tls("files.example")
    fetcher = GuardedFetcher(
        allow=["127.0.0.1"],
        resolver=dns({"files.example": ["127.0.0.1"]}),
        ssl_context=client_context,
    )
    async with tiny_server({"/a.png": IMAGE}, ssl_context=server_context) as server:
        body, _ = await fetcher.fetch(
            server.url("/a.png", host="files.example", scheme="https"), accept=["image/*"]
        )
    assert body == PNG
    assert server.server_names == ["files.example"]


async def test_https_refuses_a_certificate_for_another_name() -> None:
    """A certificate for files.example does not pass for other.example at the same address."""
    server_context, client_context = _tls("files.example")
    fetcher = GuardedFetcher(
        allow=["127.0.0.1"],
        resolver=dns({"other.example": ["127.0.0.1"]}),
        ssl_context=client_context,
    )
    async with tiny_server({"/a.png": IMAGE}, ssl_context=server_context) as server:
        with pytest.raises(FetchFailed):
            await fetcher.fetch(
                server.url("/a.png", host="other.example", scheme="https"), accept=["image/*"]
            )
    assert server.requests == []
