"""The engine's publisher: frames committed on database threads reach every group once and in
the order of the commits, batched into few round trips (conversations.events)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from conversations import events
from omnichannel.realtime.serverloop import serving


async def test_frames_from_database_threads_arrive_once_each_and_in_commit_order():
    layer = get_channel_layer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("order.first", first)
    await layer.group_add("order.second", second)

    def commit_frames():  # as the services do, from a thread the server loop called into
        for n in range(300):
            events.publish_now(["order.first", "order.second"], {"type": "test", "n": n})

    with serving():  # as a socket or a request of the real-time stack does
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
            events.publish_now(["outside"], {"type": "test", "n": n})
        events.flush()

    await asyncio.to_thread(task)
    received = [(await asyncio.wait_for(layer.receive(channel), 5))["frame"]["n"] for _ in range(50)]
    assert received == list(range(50))
    await layer.group_discard("outside", channel)


@pytest.mark.fast_realtime
async def test_a_batch_of_frames_is_one_redis_command_and_keeps_its_order(monkeypatch):
    """A pipeline of PUBLISHes cost the client a command and a reply per frame and group: about
    seven per assignment, a large part of a drain's CPU."""
    layer = get_channel_layer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("batch.first", first)
    await layer.group_add("batch.second", second)
    await layer.group_send_many([(["batch.first"], {"type": "test", "n": -1})])  # Redis knows the script
    assert (await asyncio.wait_for(layer.receive(first), 5))["n"] == -1
    commands = []
    execute = redis.asyncio.Redis.execute_command

    async def counted(self, *args, **options):
        commands.append(args[0])
        return await execute(self, *args, **options)

    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", counted)
    await layer.group_send_many(
        [(["batch.first", "batch.second"] if n % 2 else ["batch.second"], {"type": "test", "n": n}) for n in range(200)]
    )
    assert commands == ["EVALSHA"]
    odd = [(await asyncio.wait_for(layer.receive(first), 5))["n"] for _ in range(100)]
    every = [(await asyncio.wait_for(layer.receive(second), 5))["n"] for _ in range(200)]
    assert odd == list(range(1, 200, 2)) and every == list(range(200))
    await layer.group_discard("batch.first", first)
    await layer.group_discard("batch.second", second)


@pytest.mark.fast_realtime
async def test_a_batch_reaches_a_redis_that_forgot_the_script():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("batch.flushed", channel)
    shard = layer._get_layer()._get_shard(layer._get_layer()._get_group_channel_name("batch.flushed"))
    shard._ensure_redis()
    await shard._redis.script_flush()  # as a restarted Redis would have
    await layer.group_send_many([(["batch.flushed"], {"type": "test", "n": n}) for n in range(3)])
    assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(3)] == [0, 1, 2]
    await layer.group_discard("batch.flushed", channel)
