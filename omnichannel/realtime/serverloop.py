"""Which server event loop a piece of work serves, for the database threads it sends work to.

A service committing on a database thread hands its frames to the event loop of the socket or
request it works for (``conversations.events``), so that the thread goes on at once. The
loop is found through a context variable: the real-time stack sets it for each socket
(``omnichannel.realtime.consumer``) and each HTTP request (``omnichannel.realtime.http``), and
``sync_to_async`` (``database_sync_to_async``, the frame threads, Django's request thread) runs
the call in a copy of the caller's context, so the thread sees the loop of its caller. Nothing
else sets it: Celery, management commands and sync tests see ``None``.

(It replaces a read of asgiref's private ``SyncToAsync.threadlocal.main_event_loop``.) No
Django import."""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager

# (pid, loop): a process forked while the variable was set (nothing here forks, but Celery's
# prefork pool could inherit a thread's context) must not take its parent's loop for its own.
_server_loop: contextvars.ContextVar[tuple[int, asyncio.AbstractEventLoop] | None] = contextvars.ContextVar(
    "omnichannel_server_loop", default=None
)


@contextmanager
def serving() -> Iterator[None]:
    """While the block runs (on the event loop), work sent from this context to a thread knows
    the loop it serves."""
    token = _server_loop.set((os.getpid(), asyncio.get_running_loop()))
    try:
        yield
    finally:
        _server_loop.reset(token)


def server_loop() -> asyncio.AbstractEventLoop | None:
    """The running server loop whose socket or request this thread works for, if any."""
    value = _server_loop.get()
    if value is None or value[0] != os.getpid():
        return None
    loop = value[1]
    return loop if loop.is_running() else None


def serve_http(app):
    """An ASGI application for HTTP that sets the server loop around ``app`` (Django's own
    handler, in the stock stack)."""

    async def application(scope, receive, send):
        with serving():
            await app(scope, receive, send)

    return application
