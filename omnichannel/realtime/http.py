"""How an HTTP request runs under ASGI: one hop from the event loop to a thread, not fifteen.

Django's ASGI handler builds its middleware chain for the event loop. A middleware that can
run either way (every ``MiddlewareMixin`` one: sessions, locale, CSRF, authentication,
messages…) then runs on the loop, and sends each of its ``process_request`` and
``process_response`` to the request's thread and back; the sync views send the request there
once more: about fifteen round trips between loop and thread a request (docs/decisions.md,
"HTTP requests: one hop to a thread").

Here the chain is built the way Django builds it for WSGI, so everything below ServeStatic
runs in one go in the request's thread (the same per-request thread Django uses for its
signals). Above it stay only our CSP middleware (a few string operations) and ServeStatic,
which answers a static file without leaving the loop. Django's ``SecurityMiddleware`` is the
first below them: Django's deploy checks look for it by name, and on the loop its two methods
would be two more round trips. Static files get its nosniff header from ServeStatic
(``SERVESTATIC_ADD_HEADERS_FUNCTION``); HSTS and the HTTPS redirect are for pages.
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import AsyncToSync, ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler

from omnichannel.realtime.serverloop import serve_http, serving

# Idle request threads kept for the next requests; more at once get new threads, which end
# after their request.
IDLE_THREADS = 32


class RequestThread(ThreadPoolExecutor):
    """One worker thread, and whether it has finished everything it was given (a request whose
    client left is cancelled on the loop while its thread still runs the view)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        # No lock: ``submitted`` is written on the event loop, ``finished`` in the worker thread
        # (or on the loop for a call cancelled before it ran). A lost update can only make the
        # thread look busy, never idle: at worst it is let go instead of reused.
        self.submitted = self.finished = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        self.finished += 1

    @property
    def idle(self) -> bool:
        return self.submitted == self.finished


class ASGIHandler(DjangoASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle_threads: collections.deque[RequestThread] = collections.deque()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            thread = self._idle_threads.pop()
        except IndexError:
            thread = RequestThread()
        try:
            with serving():
                async with ThreadSensitiveContext(executor=thread):
                    await self.handle(scope, receive, send)
        finally:
            if thread.idle and len(self._idle_threads) < IDLE_THREADS:
                self._idle_threads.append(thread)
            else:  # still busy with a request that was given up, or enough are idle
                thread.shutdown(wait=False)

    def load_middleware(self, is_async: bool = False) -> None:
        # The sync build: middleware that can run in a thread does; where the chain reaches an
        # async-only middleware (ServeStatic), the part below it is one sync_to_async call.
        super().load_middleware(is_async=False)
        chain = self._middleware_chain
        # The top of the chain is async (CSP, ServeStatic) and Django wrapped it in
        # async_to_sync for a sync caller: take the async callable it wraps.
        if isinstance(chain, AsyncToSync):
            self._middleware_chain = chain.awaitable
        else:  # no async-only middleware at all: the whole chain is one hop
            self._middleware_chain = sync_to_async(chain, thread_sensitive=True)


def application():
    """The HTTP application: ``ASGIHandler``, or Django's own (``get_asgi_application()``) with
    ``OMNICHANNEL_STOCK_REALTIME``; either sets the server loop for its request threads."""
    if settings.OMNICHANNEL_STOCK_REALTIME:
        return serve_http(get_asgi_application())
    return ASGIHandler()
