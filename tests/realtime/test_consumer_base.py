"""The sockets' consumer base without a channel of its own (conversations.consumers.
ProtocolConsumer.__call__, omnichannel.layers.PubSubChannelLayer.new_inbox): what an idle socket
costs, and that group events still reach a socket once, in order, one thing at a time."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.layers import get_channel_layer

from conversations import consumers, events
from conversations.consumers import WidgetConsumer
from tests.realtime.conftest import customer_token
from tests.realtime.test_widget_socket import connect_customer

pytestmark = pytest.mark.django_db(transaction=True)


def notice(n: int) -> dict:
    return {"type": "broadcast", "frame": {"type": "notice", "n": n}}


async def test_an_idle_socket_is_one_task_and_no_redis_subscription_of_its_own(socket, persistent):
    """Channels' consumer ran three tasks per socket (the application, and two that
    ``await_many_dispatch`` keeps waiting on the socket and on the consumer's channel) and
    subscribed every socket's channel in Redis."""
    before = len(asyncio.all_tasks())
    sockets = []
    for n in range(5):
        s, _ = await connect_customer(
            socket, persistent, customer_token(persistent.authentication_setting, sub=f"idle-{n}")
        )
        sockets.append(s)
    await asyncio.sleep(0.1)  # anything the sockets started has run
    assert len(asyncio.all_tasks()) - before <= 5 + 1  # one per socket; the layer's reader

    layer = get_channel_layer()._get_layer()
    subscribed = set().union(*(shard._subscribed_to for shard in layer._shards))
    assert subscribed and all("__group__" in channel for channel in subscribed), subscribed
    for s in sockets:
        await s.close()


async def test_a_group_event_during_authentication_arrives_after_ready(socket, persistent, monkeypatch):
    """The socket joins its group before it reads the conversation (so nothing committed after the
    read is missed); an event published in between waits until the ready frame is sent."""
    read = WidgetConsumer._ready_state

    def slow_read(self, after_seq):
        events.send_now([events.customer_group(self.customer.pk, self.widget.workstream_id)], {"type": "notice"})
        time.sleep(0.3)  # the event reaches the server's loop while this handler is still busy
        return read(self, after_seq)

    monkeypatch.setattr(WidgetConsumer, "_ready_state", slow_read)
    s, _ready = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    assert (await s.next())["type"] == "notice"
    await s.close()


async def test_group_events_arrive_once_and_in_order_while_frames_are_handled(socket, persistent, monkeypatch):
    """Events queue while a frame's handler runs and are sent after it; between frames a
    short-lived task sends them. None is lost, none is sent twice, the order holds."""
    monkeypatch.setattr(consumers, "TYPING_INTERVAL", 0.0)
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    group = next(g for g in get_channel_layer()._get_layer().groups if "customer" in g)
    group = group.split("__group__", 1)[1]
    layer = get_channel_layer()

    async def publish():
        for n in range(200):
            await layer.group_send(group, notice(n))
            if n % 20 == 0:
                await asyncio.sleep(0.005)

    async def type_along():
        for _ in range(30):
            await s.send({"type": "typing"})
            await asyncio.sleep(0.003)

    await asyncio.gather(publish(), type_along())
    received = []
    while len(received) < 200:
        frame = await s.next()
        if frame["type"] == "notice":
            received.append(frame["n"])
    assert received == list(range(200))
    await s.close()


async def test_one_group_event_is_decoded_once_for_every_member_of_this_process():
    layer = get_channel_layer()
    got: dict[str, list] = {"a": [], "b": []}
    a = layer.new_inbox(got["a"].append)
    b = layer.new_inbox(got["b"].append)
    await layer.group_add("decode-once", a)
    await layer.group_add("decode-once", b)
    await layer.group_send("decode-once", notice(1))
    for _ in range(100):
        if got["a"] and got["b"]:
            break
        await asyncio.sleep(0.02)
    assert got["a"] == [notice(1)] and got["b"][0] is got["a"][0]
    layer.close_inbox(a)
    await layer.group_send("decode-once", notice(2))
    await asyncio.sleep(0.2)
    assert len(got["a"]) == 1 and len(got["b"]) == 2
    await layer.group_discard("decode-once", a)
    await layer.group_discard("decode-once", b)


async def test_a_failing_group_event_handler_ends_the_socket_and_reaches_the_server(socket, persistent, monkeypatch):
    """As with Channels' consumer: the error is not swallowed; the ASGI server logs it and closes
    the socket; the consumer's inbox is gone."""

    async def broken(self, frame):
        raise RuntimeError("handler bug")

    monkeypatch.setattr(WidgetConsumer, "on_frame", broken)
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    layer = get_channel_layer()
    inner = layer._get_layer()
    group = next(g for g in inner.groups if "customer" in g).split("__group__", 1)[1]
    inboxes = {name for name in inner.channels if "inbox." in name}
    assert len(inboxes) == 1
    await layer.group_send(group, notice(1))
    with pytest.raises(RuntimeError, match="handler bug"):
        await s.next()
    s.finished = True
    assert not any("inbox." in name for name in inner.channels)
