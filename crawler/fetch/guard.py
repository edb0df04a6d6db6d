"""Which peers a fetch may talk to, when the crawl asks for the guard (server-side request
forgery: a public page must not steer the crawler to 127.0.0.1, the LAN or a cloud metadata
service at 169.254.169.254).

The check is on the address the socket connects to, after DNS, never on the URL's host name:
a name can resolve anywhere, and again differently a second later (DNS rebinding). Both
fetchers call `check_peer` before a single byte of the request is sent.
"""

from __future__ import annotations

import ipaddress

# Python's flags cover the registries of special addresses, but the shared address space of
# carrier-grade NAT is "not global" without being "private", so it is named here.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ForbiddenAddress(OSError):
    """A connection to an address the policy forbids. An OSError, so that the connection code
    of both clients treats it as a failed connect (closing the socket, trying no request)."""

    MARK = "forbidden address"

    def __init__(self, address: str) -> None:
        super().__init__(f"{self.MARK} {address}: not a public address")
        self.address = address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4 or NAT64), which is where the
    packets really go."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(ip: str) -> bool:
    """True for a globally routable unicast address; False for loopback, private (RFC 1918,
    fc00::/7), link-local (169.254/16 and its metadata service, fe80::/10), shared (CGNAT),
    unspecified, multicast, reserved or documentation addresses, and for anything that does
    not parse as an address."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])  # an IPv6 zone id names no host
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(str(embedded))
        if address.is_site_local:
            return False
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


def address_allowed(ip: str, block_private_addresses: bool) -> bool:
    """Whether the policy lets a fetch connect to `ip`."""
    return not block_private_addresses or is_public_address(ip)


def check_peer(sockaddr: tuple, block_private_addresses: bool) -> None:
    """Raise ForbiddenAddress unless the policy allows the socket address (host, port, ...)."""
    ip = str(sockaddr[0])
    if not address_allowed(ip, block_private_addresses):
        raise ForbiddenAddress(ip)
