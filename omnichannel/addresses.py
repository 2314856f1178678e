"""The client's address, for every per-address limit: the REST throttles, the sign-in lockout
(django-axes) and the cap of sockets per address (omnichannel.socketcap).

It is the TCP peer's address. ``X-Forwarded-For`` is believed only when that peer is one of
``TRUSTED_PROXIES`` (settings; addresses or networks): then the address is the right-most one of
the header that is not itself a trusted proxy, the last hop a trusted proxy saw (each proxy
appends the address it was connected from; everything left of that is the client's to write).
uvicorn runs with ``--no-proxy-headers`` (omnichannel.limits), so the peer it hands over is the
real one and this is the only place that reads the header (docs/reliability.md).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(entries: list[str]) -> tuple[IPNetwork, ...]:
    """``TRUSTED_PROXIES`` entries as networks (an address is a network of one); ValueError,
    naming the entry, for anything else (a host name, ``*``, host bits set in a network)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip()))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network such as 10.0.0.0/8") from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_trusted_proxies(list(entries))


def _trusted() -> tuple[IPNetwork, ...]:
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _address(text: str | None) -> IPAddress | None:
    """An address as peers and proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[::1]:5678``); an IPv4 address mapped into IPv6 is the IPv4 address. None otherwise."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def _peer_and_forwarded(source: Any) -> tuple[str | None, str]:
    if isinstance(source, dict):  # an ASGI scope (HTTP or WebSocket)
        client = source.get("client")
        headers = source.get("headers") or ()
        forwarded = [value.decode("latin1") for name, value in headers if name == b"x-forwarded-for"]
        return (client[0] if client else None), ",".join(forwarded)
    meta = source.META  # an HttpRequest, or DRF's Request around one
    return meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR", "")


def client_address(source: Any) -> str | None:
    """The client's address of an ``HttpRequest`` (or DRF ``Request``) or of an ASGI scope, the
    same for both; None when the server gave no peer address (a Unix socket)."""
    peer_text, forwarded = _peer_and_forwarded(source)
    peer = _address(peer_text)
    if peer is None:
        return None
    networks = _trusted()
    if not forwarded or not networks or not _is_trusted(peer, networks):
        return str(peer)
    address = peer
    for hop_text in reversed(forwarded.split(",")):
        hop = _address(hop_text)
        if hop is None:
            break  # not an address: nothing left of it can be believed
        address = hop
        if not _is_trusted(hop, networks):
            break
    return str(address)


def from_trusted_proxy(source: Any) -> bool:
    """Whether the TCP peer is one of ``TRUSTED_PROXIES`` (whose forwarded headers count)."""
    peer = _address(_peer_and_forwarded(source)[0])
    networks = _trusted()
    return peer is not None and bool(networks) and _is_trusted(peer, networks)
