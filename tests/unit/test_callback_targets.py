"""Unit tests for iwork_mc.callback_targets: which hosts a status callback may reach.

The same rule at connect time, against a real receiver, is tested in
tests/integration/test_callback_sender.py.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from iwork_mc.callback_targets import (
    AllowList,
    TargetRefused,
    address_refusal,
    check_host,
    check_resolved,
    host_literal,
)
from iwork_mc.callbacks import InvalidCallbackURL, check_callback_url

NOTHING = AllowList()


@pytest.mark.parametrize(
    ("host", "why"),
    [
        # Loopback, in every spelling the OS resolver accepts.
        ("127.0.0.1", "loopback"),
        ("127.1", "loopback"),
        ("127.0.1", "loopback"),
        ("2130706433", "loopback"),
        ("0x7f000001", "loopback"),
        ("0x7f.1", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("127.0.0.1.", "loopback"),
        ("127.255.255.254", "loopback"),
        ("[::1]", "loopback"),
        ("[0:0:0:0:0:0:0:1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:7f00:1]", "loopback"),
        ("[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
        ("[64:ff9b::7f00:1]", "loopback"),  # NAT64 of 127.0.0.1
        ("[::127.0.0.1]", "reserved"),  # IPv4-compatible, deprecated
        ("0.0.0.0", "unspecified"),
        ("0", "unspecified"),
        ("[::]", "unspecified"),
        # Private, shared, link-local (cloud metadata), unique-local.
        ("10.0.0.1", "private"),
        ("012.0.0.1", "private"),  # octal 10.0.0.1
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("3232235777", "private"),  # 192.168.1.1
        ("[::ffff:192.168.1.1]", "private"),
        ("100.64.0.1", "shared"),
        ("100.100.100.200", "shared"),  # Alibaba Cloud metadata
        ("169.254.169.254", "link-local"),  # AWS, GCP, Azure metadata
        ("0xa9fea9fe", "link-local"),
        ("[fe80::1]", "link-local"),
        ("[fe80::1%25eth0]", "link-local"),
        ("[fd00::1]", "private"),
        ("[fc00::1]", "private"),
        ("[fec0::1]", "site-local"),
        # Multicast, reserved, documentation and benchmarking ranges.
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("[ff02::1]", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),
        ("198.18.0.1", "private"),
        ("[2001:db8::1]", "private"),
        # Names that can only be local.
        ("localhost", "names this machine"),
        ("LOCALHOST", "names this machine"),
        ("localhost.", "names this machine"),
        ("api.localhost", "names this machine"),
        ("ip6-localhost", "names this machine"),
        ("metadata.google.internal", "cloud metadata"),
        ("metadata.goog", "cloud metadata"),
        ("instance-data", "cloud metadata"),
        ("metadata", "cloud metadata"),
        ("db.internal", "local-only domain"),
        ("printer.local", "local-only domain"),
        ("nas.home.arpa", "local-only domain"),
        ("intranet", "single-label"),
    ],
)
def test_internal_hosts_are_refused(host: str, why: str) -> None:
    """Every spelling of an internal address, and every local-only name, is refused."""
    with pytest.raises(TargetRefused, match=why):
        check_host(host, NOTHING)
    with pytest.raises(InvalidCallbackURL, match=why):
        check_callback_url(f"http://{host}:8080/cb")


@pytest.mark.parametrize(
    "host",
    [
        "hooks.example.com",
        "93.184.215.14",
        "1.1.1.1",
        "[2606:4700:4700::1111]",
        "[::ffff:8.8.8.8]",
        "xn--r8jz45g.jp",
        "my_host.example.com",
    ],
)
def test_public_hosts_pass(host: str) -> None:
    """Public addresses and ordinary names are accepted."""
    check_host(host, NOTHING)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("1", "0.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),  # not octal: a name, as getaddrinfo treats it
        ("127.0.0.1 x", None),
    ],
)
def test_host_literal_reads_numbers_as_the_resolver_does(
    spelling: str, address: str | None
) -> None:
    """Shortened, decimal, octal and hex IPv4 and bracketed IPv6 are addresses; names are not."""
    parsed = host_literal(spelling)
    assert address == (None if parsed is None else str(parsed))


def test_allow_list_lets_chosen_hosts_through() -> None:
    """Networks admit their addresses (literal or resolved); names are trusted as resolved."""
    allow = AllowList.parse("127.0.0.1, 10.0.0.0/8, fd00::/8, Hooks.Corp.Internal.")
    for host in ("127.0.0.1", "127.1", "10.9.8.7", "[fd00::5]", "hooks.corp.internal"):
        check_host(host, allow)
    with pytest.raises(TargetRefused, match="loopback"):
        check_host("127.0.0.2", allow)
    with pytest.raises(TargetRefused, match="local-only"):
        check_host("other.corp.internal", allow)
    check_resolved("hooks.corp.internal", [ip_address("192.168.7.7")], allow)
    check_resolved("hooks.example.com", [ip_address("10.1.1.1")], allow)
    with pytest.raises(TargetRefused):
        check_resolved("hooks.example.com", [ip_address("192.168.7.7")], allow)


def test_resolved_addresses_must_all_be_public() -> None:
    """One internal answer refuses the name, and the message does not reveal the address."""
    public = ip_address("93.184.215.14")
    check_resolved("hooks.example.com", [public], NOTHING)
    with pytest.raises(TargetRefused) as refused:
        check_resolved("hooks.example.com", [public, ip_address("10.0.0.7")], NOTHING)
    assert "10.0.0.7" not in str(refused.value)
    assert "hooks.example.com resolves to an address that is not public" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/33", "not a network"),
        ("hooks example", "neither an IP address nor a host name"),
        ("http://hooks.example.com", "not a network"),
    ],
)
def test_allow_list_errors_name_the_entry(text: str, why: str) -> None:
    """A bad allow-list entry is an error that names it, not an entry silently ignored."""
    with pytest.raises(ValueError, match=why):
        AllowList.parse(text)


def test_empty_allow_list_allows_nothing() -> None:
    assert AllowList() == AllowList.parse("") == AllowList.parse(" , ")


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_have_no_refusal(address: str) -> None:
    assert address_refusal(ip_address(address)) is None
