"""The address rules, one address at a time: internal addresses refused, public ones allowed,
the allow-list admitting exactly what it names."""

from __future__ import annotations

import ipaddress

import pytest

from artifacts import AddressPolicy

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104 - an address under test, not one bound to
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("text", REFUSED)
def test_internal_addresses_are_refused(text: str) -> None:
    """Private, loopback, link-local, shared, reserved, multicast, metadata and embedded ones."""
    assert AddressPolicy().refusal("example.com", ipaddress.ip_address(text)) is not None


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    """A public unicast address, in either family or IPv4-mapped, passes."""
    assert AddressPolicy().refusal("example.com", ipaddress.ip_address(text)) is None


def test_metadata_addresses_are_named_as_such() -> None:
    """The refusal says why, so an operator sees it was the metadata endpoint."""
    policy = AddressPolicy()
    for text in ("169.254.169.254", "fd00:ec2::254"):
        assert "metadata" in (policy.refusal("x", ipaddress.ip_address(text)) or "")


def test_a_cidr_on_the_allow_list_admits_its_addresses_only() -> None:
    """10.1.0.0/16 admits 10.1.2.3 and its IPv4-mapped form, not 10.2.0.1."""
    policy = AddressPolicy(["10.1.0.0/16"])
    assert policy.refusal("files", ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal("files", ipaddress.ip_address("::ffff:10.1.2.3")) is None
    assert policy.refusal("files", ipaddress.ip_address("10.2.0.1")) is not None


def test_an_allow_listed_host_may_resolve_anywhere() -> None:
    """A host name on the list admits whatever it resolves to, matched case-insensitively."""
    policy = AddressPolicy(["Files.Internal"])
    assert policy.refusal("files.internal.", ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal("other.internal", ipaddress.ip_address("10.9.9.9")) is not None
