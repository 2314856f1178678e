"""The engine's publisher: frames committed on database threads reach every group once and in
the order of the commits, batched into few round trips (conversations.events)."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from conversations import events


async def test_frames_from_database_threads_arrive_once_each_and_in_commit_order():
    layer = get_channel_layer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("order.first", first)
    await layer.group_add("order.second", second)

    def commit_frames():  # as the services do, from a thread the server loop called into
        for n in range(300):
            events.send_now(["order.first", "order.second"], {"type": "test", "n": n})

    await sync_to_async(commit_frames, thread_sensitive=False)()
    for channel in (first, second):
        received = [(await asyncio.wait_for(layer.receive(channel), 5))["frame"]["n"] for _ in range(300)]
        assert received == list(range(300))
    await layer.group_discard("order.first", first)
    await layer.group_discard("order.second", second)


async def test_a_frame_sent_outside_the_server_reaches_the_group():
    """Celery and management commands hand frames to the process's broadcast loop; flush (after
    every Celery task, and at exit) returns once they are sent."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("outside", channel)

    def task():
        for n in range(50):
            events.send_now(["outside"], {"type": "test", "n": n})
        events.flush()

    await asyncio.to_thread(task)
    received = [(await asyncio.wait_for(layer.receive(channel), 5))["frame"]["n"] for _ in range(50)]
    assert received == list(range(50))
    await layer.group_discard("outside", channel)
