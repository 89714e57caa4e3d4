"""Which network addresses a fetch may connect to: the SSRF half of the fetch policy.

Pure functions, no I/O, so the rules are testable one address at a time. An address is
refused when it is not globally routable (private, loopback, link-local, shared 100.64/10,
reserved, unspecified, documentation), when it is multicast, when it is a cloud metadata
endpoint, or when it is an IPv6 address that embeds a refused IPv4 address (IPv4-mapped,
6to4, Teredo): checking only the outer form would let `::ffff:127.0.0.1` through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["AddressPolicy", "IPAddress"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Named so the refusal says "metadata", and refused even if a future Python reclassified them.
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def _category(address: IPAddress) -> str | None:
    """Why the address is refused, or None when it is a public unicast address."""
    if address in _METADATA:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # The socket connects to the IPv4 address itself: judge that one alone.
            inner = _category(address.ipv4_mapped)
            return None if inner is None else f"IPv4-mapped {address.ipv4_mapped}, {inner}"
        embedded = address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            inner = _category(embedded)
            if inner is not None:
                return f"an IPv6 address embedding {embedded}, {inner}"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "a shared address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    for refused, name in checks:
        if refused:
            return name
    return None


class AddressPolicy:
    """The allow-list and the refusal rules together.

    `allow` holds host names (matched exactly, case-insensitively, against the URL's host) and
    IP addresses or CIDR networks (matched against every resolved address). An allow-listed
    host may resolve to any address; that is how a fetch reaches an in-cluster file server.
    """

    def __init__(self, allow: Sequence[str] = ()) -> None:
        networks: list[_Network] = []
        hosts: set[str] = set()
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        self._networks = tuple(networks)
        self._hosts = frozenset(hosts)

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._hosts

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why connecting to `address` (resolved from `host`) is refused, or None."""
        if self.host_allowed(host):
            return None
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # Allow-listing 127.0.0.1 also admits its IPv4-mapped spelling.
            candidates.append(address.ipv4_mapped)
        if any(candidate in net for candidate in candidates for net in self._networks):
            return None
        return _category(address)
