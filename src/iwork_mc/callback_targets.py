"""Where a status callback may go: public hosts, or what the operator allows (pure).

A callback URL is chosen by a tenant, and the worker POSTs to it from inside
the operator's network.  Left unchecked, an app could point it at the
gateway's own ``/router/rest``, a database port, a cloud metadata service
(``169.254.169.254``) or any private host, and read each try's outcome on its
timeline like a port scan.  So a callback goes only to a **public** address,
unless the operator lists the host in ``callback_allow_hosts``.

One rule, applied twice:

- **When the URL is set** (:func:`check_host`, called by
  :func:`iwork_mc.callbacks.check_callback_url`): a host that is an IP literal
  is read the way the OS resolver reads it (``127.1``, ``2130706433``,
  ``0x7f000001`` and ``0177.0.0.1`` all spell 127.0.0.1) and judged by
  :func:`address_refusal`; names that can only be local (``localhost``,
  ``*.localhost``, ``*.local``, ``*.internal``, cloud metadata names,
  single-label names resolved through search domains) are refused outright.
- **When the callback is sent** (:func:`check_resolved`, called by the sender's
  network backend): every address the name resolves to *now* must pass, and
  the connection goes to one of those very addresses.  A name that looked
  public when it was set but resolves to 127.0.0.1 today (DNS rebinding, or a
  URL stored before this check existed) is refused before any connection is
  made, so the refusal reads the same whether a port is open or closed.

Refusals raise :class:`TargetRefused`; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

__all__ = [
    "AllowList",
    "IPAddress",
    "TargetRefused",
    "address_refusal",
    "check_host",
    "check_resolved",
    "host_literal",
    "normalise_host",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: Names that always mean this machine (RFC 6761 and common /etc/hosts aliases).
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
#: Cloud metadata services reachable by name (their addresses are link-local or shared).
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.goog",
        "metadata.google.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
#: Special-use domains that never name a public host: RFC 6761 (localhost), RFC 6762
#: (local, mDNS), RFC 8375 (home.arpa) and ICANN's private-use ``internal``.
_LOCAL_SUFFIXES = ("localhost", "localdomain", "local", "internal", "home.arpa")
#: The well-known NAT64 prefix (RFC 6052): its last 32 bits are an IPv4 address.
_NAT64 = IPv6Network("64:ff9b::/96")
#: RFC 6598 shared address space, which ``ipaddress`` counts as neither private nor
#: global; Alibaba Cloud's metadata service (100.100.100.200) lives there.
_SHARED = IPv4Network("100.64.0.0/10")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_HINT = "callbacks go to public hosts only, unless the operator allows this one"


class TargetRefused(ValueError):
    """A callback target that policy refuses; the message says why (no address learnt by DNS)."""


def normalise_host(host: str) -> str:
    """``host`` as compared and resolved: lower case, no trailing dot, IDNA (ASCII) form.

    Raises:
        TargetRefused: the name cannot be encoded (an empty label, a label too long…).
    """
    host = host.strip().lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise TargetRefused(f"{host!r} is not a valid host name") from None


def host_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells if it is an IP literal, read as the OS resolver reads it.

    IPv4 goes through :func:`socket.inet_aton`, as ``getaddrinfo`` does, so the
    shortened, decimal, octal and hex spellings count.  IPv6 is taken without
    its brackets; a zone (``%eth0``) is not a public address anyway.
    """
    host = host.strip("[]")
    if ":" in host:
        try:
            return IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    if not host or not host.isascii() or not all(part.isalnum() for part in host.split(".")):
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one reaches through (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is no place for a callback (``"a loopback address"``…); None if public."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_refusal(embedded)
        if address.is_site_local:
            return "a site-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks the operator lets callbacks reach although they are not public.

    ``networks`` are matched against the URL's literal address and every
    address a name resolves to.  ``names`` are trusted wherever they resolve
    (the operator vouches for that name's DNS); list the network instead to
    keep the address check.
    """

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str] | str) -> AllowList:
        """Comma-separated (or listed) IPs, CIDR networks and host names.

        ``"127.0.0.1, 10.0.0.0/8, hooks.corp.internal"``; an empty text allows nothing.

        Raises:
            ValueError: an entry is neither a network nor a host name; the message names it.
        """
        items = entries.split(",") if isinstance(entries, str) else list(entries)
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for raw in items:
            entry = raw.strip()
            if not entry:
                continue
            literal = None if "/" in entry else host_literal(entry)
            if literal is not None:
                networks.append(ipaddress.ip_network(literal))
            elif "/" in entry or ":" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry))
                except ValueError as exc:
                    raise ValueError(f"{entry!r} is not a network: {exc}") from None
            else:
                try:
                    name = normalise_host(entry)
                except TargetRefused:
                    name = ""
                if not _HOST_NAME.fullmatch(name):
                    raise ValueError(f"{entry!r} is neither an IP address nor a host name")
                names.add(name)
        return cls(tuple(networks), frozenset(names))

    def allows_name(self, host: str) -> bool:
        return normalise_host(host) in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def check_host(host: str, allow: AllowList) -> None:
    """Refuse a URL's host that cannot be a public callback receiver, before any DNS lookup.

    Raises:
        TargetRefused: an IP literal that is not public, a local or metadata name,
            or a single-label name; unless ``allow`` lists it.
    """
    name = normalise_host(host)
    if name in allow.names:
        return
    literal = host_literal(name)
    if literal is not None:
        reason = address_refusal(literal)
        if reason is not None and not allow.allows_address(literal):
            spelled = "" if str(literal) == name.strip("[]") else f" ({literal})"
            raise TargetRefused(f"{host}{spelled} is {reason}; {_HINT}")
        return
    if "%" in name or not _HOST_NAME.fullmatch(name):
        raise TargetRefused(f"{host!r} is not a valid host name")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        raise TargetRefused(f"{host} names this machine; {_HINT}")
    if name in _METADATA_NAMES:
        raise TargetRefused(f"{host} is a cloud metadata service; {_HINT}")
    if any(name == suffix or name.endswith("." + suffix) for suffix in _LOCAL_SUFFIXES):
        raise TargetRefused(f"{host} is in a local-only domain; {_HINT}")
    if "." not in name:
        raise TargetRefused(
            f"{host} is a single-label name (resolved through local search domains); {_HINT}"
        )


def check_resolved(host: str, addresses: Iterable[IPAddress], allow: AllowList) -> None:
    """Refuse ``host`` unless every address it resolves to now is public or allowed.

    One refused address refuses them all: a name that mixes public and
    private answers is what DNS rebinding looks like.  The message never
    names the address, so an app cannot learn the operator's internal DNS.

    Raises:
        TargetRefused: some address is neither public nor in ``allow``.
    """
    if allow.allows_name(host):
        return
    for address in addresses:
        if address_refusal(address) is not None and not allow.allows_address(address):
            raise TargetRefused(f"{host} resolves to an address that is not public; {_HINT}")
