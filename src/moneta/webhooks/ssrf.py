"""Keep webhook deliveries off the private network (SSRF).

An endpoint's host must resolve only to global addresses: no loopback, private (RFC 1918,
unique-local), link-local (cloud metadata at 169.254.169.254), CGNAT, multicast, reserved
or unspecified ones, in any spelling (IPv4-mapped IPv6 included). Operators may allow
networks explicitly (`MONETA_WEBHOOK_ALLOWED_NETWORKS`, e.g. 127.0.0.1/32 in development).
The check runs when an endpoint is created and again before every delivery, because DNS
answers change, and the delivery connects to the address that was checked (no second
lookup a rebinding DNS server could answer differently)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeURLError(ValueError):
    """The URL may not receive webhooks; the message says why (shown to the API caller)."""


def parse_networks(spec: str) -> list[IPNetwork]:
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    ]


# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it: NAT64
# (RFC 6052, RFC 8215) and the deprecated IPv4-compatible form.
_EMBEDS_IPV4 = [ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96")]


def _inner_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to, in any of the transition spellings."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _EMBEDS_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_address(address: IPAddress, allowed: list[IPNetwork]) -> None:
    if any(address in network for network in allowed):
        return
    inner = _inner_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None:
        check_address(inner, allowed)
        return
    if not address.is_global or address.is_multicast:
        raise UnsafeURLError(f"the host resolves to a non-public address ({address})")


def check_syntax(url: str, allow_http: bool) -> tuple[str, int]:
    """(host, port) of an acceptable URL, before any DNS lookup."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeURLError(f"the URL must start with {' or '.join(s + '://' for s in schemes)}")
    if parts.username or parts.password:
        raise UnsafeURLError("the URL may not carry credentials")
    try:
        given = parts.port
    except ValueError:
        raise UnsafeURLError("the URL's port is not valid") from None
    if given == 0:
        raise UnsafeURLError("the URL's port is not valid")
    port = given if given is not None else (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    if not host:
        raise UnsafeURLError("the URL has no host")
    return host, port


async def check_url(url: str, allowed: list[IPNetwork], allow_http: bool) -> IPAddress:
    """Raises `UnsafeURLError` unless every address the host resolves to is acceptable;
    returns the one to connect to."""
    host, port = check_syntax(url, allow_http)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURLError(f"the host {host!r} does not resolve") from None
    if not infos:
        raise UnsafeURLError(f"the host {host!r} does not resolve")
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        check_address(address, allowed)
    return addresses[0]


def pinned(url: str, address: IPAddress) -> tuple[str, dict[str, str]]:
    """`url` aimed at `address` (the caller sends the original Host header), and the
    request extensions that keep TLS verifying the original name (SNI)."""
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    extensions = {"sni_hostname": parts.hostname or ""} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), extensions
