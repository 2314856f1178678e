"""A database thread that works for a socket or a request hands its frames to that server's
event loop (conversations.events), which it finds through the context variable the real-time
stack sets (omnichannel/realtime/serverloop.py). Were the lookup to find nothing, the frames
would still arrive, through the process's broadcast loop, and no other test would fail: these
ask the lookup itself, on both stacks."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.http import HttpResponse
from django.urls import path

from conversations import events
from conversations.consumers import WidgetConsumer
from omnichannel.dbthreads import frame_sync_to_async
from omnichannel.realtime import http
from omnichannel.realtime.serverloop import server_loop, serving
from tests.realtime.conftest import customer_token
from tests.realtime.test_widget_socket import connect_customer
from tests.test_http import get

pytestmark = pytest.mark.django_db(transaction=True)

seen_in_view: list = []


def loop_view(request):
    seen_in_view.append((threading.current_thread(), events._server_loop()))
    events.publish_now(["loop.http"], {"type": "notice", "from": "view"})
    return HttpResponse("ok")


urlpatterns = [path("loop/", loop_view)]


async def test_a_frames_database_threads_publish_through_the_sockets_server_loop(socket, persistent, monkeypatch):
    loop = asyncio.get_running_loop()  # Channels' communicator runs the application on it
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("loop.socket", channel)
    seen = []

    def in_thread(label: str) -> None:
        seen.append((label, threading.current_thread() is not threading.main_thread(), events._server_loop()))
        events.publish_now(["loop.socket"], {"type": "notice", "from": label})

    async def on_probe(self, frame):
        await database_sync_to_async(in_thread)("database_sync_to_async")
        await frame_sync_to_async(in_thread)("frame_sync_to_async")
        await self.send_frame({"type": "probed"})

    handlers = WidgetConsumer.frame_handlers
    monkeypatch.setattr(
        WidgetConsumer, "frame_handlers", lambda self: {**handlers(self), "probe": lambda f: on_probe(self, f)}
    )
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    await s.send({"type": "probe"})
    await s.until(lambda f: f["type"] == "probed")
    assert seen == [
        ("database_sync_to_async", True, loop),
        ("frame_sync_to_async", True, loop),
    ], "a database thread working for a socket did not find the server's loop"
    received = [(await asyncio.wait_for(layer.receive(channel), 5))["frame"]["from"] for _ in range(2)]
    assert received == ["database_sync_to_async", "frame_sync_to_async"]
    await layer.group_discard("loop.socket", channel)


async def test_a_requests_thread_publishes_through_the_server_loop(settings):
    settings.ROOT_URLCONF = __name__
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("loop.http", channel)
    seen_in_view.clear()
    response = await get(http.application(), "/loop/")
    assert response["status"] == 200
    [(thread, found)] = seen_in_view
    assert thread is not threading.main_thread()
    assert found is loop, "a request's thread did not find the server's loop"
    assert (await asyncio.wait_for(layer.receive(channel), 5))["frame"]["from"] == "view"
    await layer.group_discard("loop.http", channel)


async def test_work_outside_a_socket_or_request_has_no_server_loop():
    """Celery, management commands and sync tests: frames go to the process's broadcast loop."""
    assert await sync_to_async(events._server_loop, thread_sensitive=False)() is None
    assert in_bare_thread(server_loop) is None
    with serving():
        assert await sync_to_async(server_loop, thread_sensitive=False)() is asyncio.get_running_loop()
        assert in_bare_thread(server_loop) is None  # a thread of its own: not the caller's context
        assert events._server_loop() is None  # on the loop itself: nothing to hand over


def in_bare_thread(func):
    result = []
    thread = threading.Thread(target=lambda: result.append(func()))
    thread.start()
    thread.join(5)
    return result[0]


def test_a_loop_that_stopped_is_no_server_loop():
    loop = asyncio.new_event_loop()
    try:
        found = loop.run_until_complete(_found_in_thread())
    finally:
        loop.close()
    assert found is loop
    context_after = []

    async def keep_context():
        with serving():
            context_after.append(contextvars.copy_context())

    other = asyncio.new_event_loop()
    other.run_until_complete(keep_context())
    other.close()
    assert context_after[0].run(server_loop) is None  # its loop no longer runs


async def _found_in_thread():
    with serving():
        return await sync_to_async(server_loop, thread_sensitive=False)()
