"""Content-Security-Policy: one strict policy for every response, relaxed per view only where
a page needs it (the widget's panel may be framed by its allowed origins; the API docs load
Swagger UI from its CDN).

Shaped like Django 6.0's built-in CSP (``SECURE_CSP``, ``request.csp_nonce``, the ``csp_nonce``
template variable), so moving to it after an upgrade is a rename (docs/decisions.md). Scripts
never run inline: they are static files, and an inline ``<style>`` or a ``<script>`` that a
page really needs carries the per-response nonce.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import wraps

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

HEADER = "Content-Security-Policy"


class CSP:
    """Source keywords, as ``django.utils.csp.CSP`` in Django 6."""

    SELF = "'self'"
    NONE = "'none'"
    # Replaced by ``'nonce-…'`` when the response's nonce was used, dropped otherwise.
    NONCE = "<CSP_NONCE_SENTINEL>"
    # Replaced by this server's WebSocket origin (``wss://host`` over HTTPS, ``ws://host`` else):
    # ``'self'`` covers ws:/wss: only in browsers that implement CSP level 3 to the letter.
    WEBSOCKET_SELF = "<CSP_WEBSOCKET_SELF_SENTINEL>"


def _new_nonce() -> str:
    return secrets.token_urlsafe(16)


def context_processor(request: HttpRequest) -> dict:
    """``{{ csp_nonce }}`` in templates (Django 6: ``django.template.context_processors.csp``)."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


def set_policy(response: HttpResponse, directives: Mapping[str, Sequence[str]]) -> HttpResponse:
    """Replace these directives of the policy for this one response (other directives stay)."""
    overrides = dict(getattr(response, "_csp_overrides", {}))
    overrides.update({name: list(sources) for name, sources in directives.items()})
    response._csp_overrides = overrides
    return response


def csp_override(directives: Mapping[str, Sequence[str]]) -> Callable:
    """View decorator: ``set_policy`` on every response of the view."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            return set_policy(view(request, *args, **kwargs), directives)

        return wrapper

    return decorator


def _websocket_origin(request: HttpRequest) -> str | None:
    try:
        host = request.get_host()
    except DisallowedHost:  # the 400 for a forged Host header must not become a 500 here
        return None
    return f"{'wss' if request.is_secure() else 'ws'}://{host}"


def build_policy(request: HttpRequest, overrides: Mapping[str, Sequence[str]] | None = None) -> str:
    config = {**settings.SECURE_CSP, **(overrides or {})}
    nonce_used = getattr(request, "_csp_nonce_used", False)
    parts = []
    for directive, sources in config.items():
        values = []
        for source in sources:
            if source == CSP.NONCE:
                if nonce_used:
                    values.append(f"'nonce-{request.csp_nonce}'")
            elif source == CSP.WEBSOCKET_SELF:
                origin = _websocket_origin(request)
                if origin:
                    values.append(origin)
            else:
                values.append(source)
        parts.append(" ".join([directive, *dict.fromkeys(values)]) if values else directive)
    return "; ".join(parts)


class ContentSecurityPolicyMiddleware:
    """Give every request a lazy nonce and every response the policy of ``SECURE_CSP`` (plus
    the view's overrides), unless the view set the header itself."""

    # Both kinds: on the event loop above ServeStatic (omnichannel/realtime/http.py), in a thread for
    # Django's test client. Its work is a few string operations, never I/O.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if iscoroutinefunction(self):
            return self._acall(request)
        self._before(request)
        return self._after(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        self._before(request)
        return self._after(request, await self.get_response(request))

    @staticmethod
    def _before(request: HttpRequest) -> None:
        def nonce() -> str:
            request._csp_nonce_used = True
            return request._csp_nonce

        request._csp_nonce = _new_nonce()
        request.csp_nonce = SimpleLazyObject(nonce)

    @staticmethod
    def _after(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if HEADER not in response and settings.SECURE_CSP:
            response[HEADER] = build_policy(request, getattr(response, "_csp_overrides", None))
        return response
