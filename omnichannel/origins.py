"""Which ``Origin`` may open a WebSocket: origins match exactly, scheme, host and port
(docs/protocol.md). This server's own origin is the scheme the socket came in with (``wss`` is
https, ``ws`` is http; behind one of ``TRUSTED_PROXIES``, its ``SECURE_PROXY_SSL_HEADER`` too)
with the ``Host`` header, when that host is one of ``ALLOWED_HOSTS``; ``CSRF_TRUSTED_ORIGINS``
are also this server's (exact entries; a wildcard entry is not an origin). The widget socket
adds the widget's allowed origins; the agent socket accepts only this server's.

Channels' ``AllowedHostsOriginValidator``, which the agent socket used, compares the host alone:
``http://chat.example.com:8080`` passed for ``https://chat.example.com``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from omnichannel.addresses import from_trusted_proxy

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without the scheme's default port, or None for
    anything that is not an http(s) origin (``null``, a path, credentials, a bad port)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in DEFAULT_PORTS or not host or "*" in host or parts.username is not None:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


@lru_cache(maxsize=8)
def _normalized(origins: tuple[str, ...]) -> frozenset[str]:
    return frozenset(origin for origin in map(normalize, origins) if origin)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin1")
    return None


def origin_header(scope: dict[str, Any]) -> str | None:
    """The socket's ``Origin`` header as sent; None without one (a client that is no browser)."""
    return _header(scope, b"origin")


def _secure(scope: dict[str, Any]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy_header or not from_trusted_proxy(scope):
        return False  # anyone else's X-Forwarded-Proto says nothing
    name, secure_value = proxy_header
    value = _header(scope, name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1"))
    return value is not None and value.split(",", 1)[0].strip() == secure_value


def server_origins(scope: dict[str, Any]) -> frozenset[str]:
    """This server's own origins for this socket."""
    origins = _normalized(tuple(settings.CSRF_TRUSTED_ORIGINS))
    host = _header(scope, b"host") or ""
    domain, _port = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's HttpRequest.get_host()
    if domain and validate_host(domain, allowed_hosts):
        own = normalize(f"{'https' if _secure(scope) else 'http'}://{host}")
        if own:
            origins = origins | {own}
    return origins


def origin_allowed(origin: str, scope: dict[str, Any], also: Iterable[str] = ()) -> bool:
    """Whether ``origin`` is this server's own, or one of ``also`` (a widget's allowed origins)."""
    wanted = normalize(origin)
    return wanted is not None and (wanted in server_origins(scope) or wanted in _normalized(tuple(also)))


class ServerOriginValidator:
    """ASGI middleware for a socket of this server's own pages: an ``Origin`` that is not this
    server's, or none, is refused at the handshake (HTTP 403)."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        origin = origin_header(scope)
        if origin is not None and origin_allowed(origin, scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
