"""The callback sender's HTTP transport: it connects only where the target policy allows.

Checking a callback URL when it is set is not enough.  A name can resolve to
127.0.0.1 tomorrow (DNS rebinding), and URLs stored before the check existed
were never checked.  So the sender resolves each host itself, at connect time,
in httpcore's network backend (:class:`PolicyNetworkBackend`):

1. the host is checked as it was when the URL was set
   (:func:`~iwork_mc.callback_targets.check_host`), with no DNS query yet;
2. the name is resolved once, and **every** address must pass
   (:func:`~iwork_mc.callback_targets.check_resolved`);
3. the TCP connection goes to one of those very addresses, never to a second
   resolution of the name.

Nothing else changes: httpcore still gives the URL's host to TLS (SNI and
certificate checks use the name) and the ``Host`` header is the request's.
A refused target raises :class:`~iwork_mc.callback_targets.TargetRefused`
before any packet leaves, so a refusal looks the same whether the port is
open, closed or filtered: the timeline cannot be used as a port scanner.

httpx 0.29 does not let an :class:`httpx.AsyncHTTPTransport` take a network
backend, so :class:`GuardedTransport` replaces the connection pool the
transport builds with an identical one on :class:`PolicyNetworkBackend`
(checked at construction: a future httpx that renames the pool fails loudly
instead of connecting unguarded).  Proxies from the environment are never
used: a proxy would connect on our behalf, past the check.
"""

from __future__ import annotations

import asyncio
import socket
import typing
from collections.abc import Awaitable, Callable
from ipaddress import ip_address

import httpcore
import httpx

from iwork_mc.callback_targets import AllowList, IPAddress, check_host, check_resolved

__all__ = ["MAX_ADDRESSES", "GuardedTransport", "PolicyNetworkBackend", "Resolver", "resolve"]

#: Resolves ``(host, port)`` to addresses; tests inject one that maps names at will.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

#: At most this many of a name's addresses are tried, one after the other.
MAX_ADDRESSES = 4


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to now, through the system resolver, in its order.

    Raises:
        OSError: the name does not resolve (``socket.gaierror``).
    """
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's TCP connect, after the host and every address it resolves to are checked.

    Args:
        allow: the operator's allow-list (``callback_allow_hosts``).
        resolver: name resolution; the system resolver by default.
        inner: the backend that makes the connection (anyio's by default).
    """

    def __init__(
        self,
        allow: AllowList,
        resolver: Resolver = resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow = allow
        self._resolve = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        check_host(host, self.allow)
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        check_resolved(host, addresses, self.allow)
        failure: Exception | None = None
        for address in addresses[:MAX_ADDRESSES]:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """:class:`httpx.AsyncHTTPTransport` whose connections go through :class:`PolicyNetworkBackend`.

    Args:
        allow: the operator's allow-list.
        limits: connection limits, as for httpx.
        resolver: name resolution; the system resolver by default.
    """

    def __init__(
        self, allow: AllowList, *, limits: httpx.Limits, resolver: Resolver = resolve
    ) -> None:
        ssl_context = httpx.create_ssl_context()  # certifi's CAs, as httpx's default
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx no longer keeps its pool in _pool: update GuardedTransport")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PolicyNetworkBackend(allow, resolver),
        )
