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
from collections.abc import Iterable

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
