"""``Cache-Control: no-store`` on every response of a view, unless the view chose its own.

The pages and API answers hold customer data (the inbox and its partials, transcripts, the
supervisor view, the agent API, the widget API's messages) and are per user; no browser cache
or proxy on the way should keep them. One default for every view, rather than a decorator on
each, so a new URL cannot forget it (tests/test_cache_control.py walks the URL conf). Static
files are answered above this middleware by ServeStatic, with their own caching headers; a
view that wants caching sets ``Cache-Control`` itself and is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

NO_STORE = "no-store"


class NoStoreMiddleware:
    """Runs in the request's thread with the rest below ServeStatic (omnichannel/realtime/http.py)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = NO_STORE
        return response
