"""Which addresses a fetch may reach: public unicast ones only.

One copy for both sides: the simulator's fetches of foreign image inputs (``sim/inputs.py``) and the
server's image downloads (``upstream/guard.py``). A URL in a prompt or a reply is data, not an order;
what it must not reach is the machine itself, its network, or a cloud metadata service (169.254.169.254,
fd00:ec2::254). The check runs on every resolved address of every hop, at connect time, so a
name that resolves to a private address (or a redirect to one) is refused before any byte is sent.
Addresses that carry an IPv4 address inside an IPv6 one are judged by the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import httpcore

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d; never a real public host


def embedded_ipv4(ip: IP) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo client), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: IP) -> bool:
    """True for a globally routable unicast address; False for private, loopback, link-local,
    unspecified, multicast, reserved, shared (CGNAT), documentation and benchmark ranges."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_public(inner)
    if isinstance(ip, ipaddress.IPv6Address) and (ip in _IPV4_COMPATIBLE or ip.scope_id):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


def allowed(address: str, also: Iterable[Network] = ()) -> bool:
    """May a fetch connect to ``address`` (an IP literal)? Public ones, and those in ``also``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if any(ip.version == net.version and ip in net for net in also):
        return True
    return is_public(ip)


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


class PublicOnlyNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only where every address a host resolves to is ``allowed``
    (public, or in ``also``), then to those checked addresses in turn: a name cannot answer one address to
    the check and another to the connection. ``unresolved`` and ``refuse`` make the caller's error from
    the reason (a name that does not resolve; an address or a socket refused)."""

    def __init__(
        self,
        *,
        unresolved: Callable[[str], Exception],
        refuse: Callable[[str], Exception],
        also: tuple[Network, ...] = (),
    ) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._unresolved = unresolved
        self._refuse = refuse
        self._also = also

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise self._unresolved(f"cannot resolve {host[:100]}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        inside = [a for a in addresses if not allowed(a, self._also)]
        if not addresses or inside:
            raise self._refuse(f"{host[:100]} is not a public address ({', '.join(inside[:3]) or 'none'})")
        # Each checked address in turn: the first may be of a family this machine cannot reach.
        for address in addresses[:-1]:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._inner.connect_tcp(addresses[-1], port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise self._refuse("a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
