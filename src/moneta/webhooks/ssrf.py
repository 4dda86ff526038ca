"""Keep webhook deliveries off the private network (SSRF).

An endpoint's host must resolve only to global addresses: no loopback, private (RFC 1918,
unique-local), link-local (cloud metadata at 169.254.169.254), CGNAT, multicast, reserved
or unspecified ones, in any spelling (IPv4-mapped IPv6 included). Operators may allow
networks explicitly (`MONETA_WEBHOOK_ALLOWED_NETWORKS`, e.g. 127.0.0.1/32 in development).
The check runs when an endpoint is created and again before every delivery, because DNS
answers change."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeURLError(ValueError):
    """The URL may not receive webhooks; the message says why (shown to the API caller)."""


def parse_networks(spec: str) -> list[IPNetwork]:
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    ]


def check_address(address: IPAddress, allowed: list[IPNetwork]) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
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
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURLError("the URL's port is not valid") from None
    host = parts.hostname
    if not host:
        raise UnsafeURLError("the URL has no host")
    return host, port


async def check_url(url: str, allowed: list[IPNetwork], allow_http: bool) -> None:
    """Raises `UnsafeURLError` unless every address the host resolves to is acceptable."""
    host, port = check_syntax(url, allow_http)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURLError(f"the host {host!r} does not resolve") from None
    if not infos:
        raise UnsafeURLError(f"the host {host!r} does not resolve")
    for info in infos:
        check_address(ipaddress.ip_address(str(info[4][0]).split("%")[0]), allowed)
