"""The sockets' consumer base without a channel of its own (conversations.consumers.
ProtocolConsumer.__call__, omnichannel.realtime.layers.PubSubChannelLayer.new_inbox): what an idle socket
costs, and that group events still reach a socket once, in order, one thing at a time."""

from __future__ import annotations

import asyncio
import json
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


def the_customer_group() -> str:
    """The group of the one customer socket of this process's layer."""
    groups = get_channel_layer()._get_layer().groups
    return next(g for g in groups if "customer" in g).split("__group__", 1)[1]


@pytest.mark.fast_realtime
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
        events.publish_now([events.customer_group(self.customer.pk, self.widget.workstream_id)], {"type": "notice"})
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
    group = the_customer_group()
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


@pytest.mark.fast_realtime
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
    for _ in range(100):
        if len(got["b"]) == 2:
            break
        await asyncio.sleep(0.02)
    assert len(got["a"]) == 1 and len(got["b"]) == 2
    await layer.group_discard("decode-once", a)
    await layer.group_discard("decode-once", b)


@pytest.mark.fast_realtime
async def test_a_failing_group_event_handler_ends_the_socket_and_reaches_the_server(socket, persistent, monkeypatch):
    """As with Channels' consumer: the error is not swallowed; the ASGI server logs it and closes
    the socket; the consumer's inbox is gone."""

    async def broken(self, frame):
        raise RuntimeError("handler bug")

    monkeypatch.setattr(WidgetConsumer, "on_frame", broken)
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    layer = get_channel_layer()
    inner = layer._get_layer()
    group = the_customer_group()
    inboxes = {name for name in inner.channels if "inbox." in name}
    assert len(inboxes) == 1
    await layer.group_send(group, notice(1))
    with pytest.raises(RuntimeError, match="handler bug"):
        await s.next()
    s.finished = True
    assert not any("inbox." in name for name in inner.channels)


# --- The consumer's loop, driven directly: a stub server whose send can block or fail ----------


class Probe(consumers.ProtocolConsumer):
    """Records what runs, in order; its "slow" frame and its sends wait when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list = []
        self.running = 0
        self.disconnected = False

    async def authenticate(self, frame):
        self.mark_authenticated()

    def frame_handlers(self):
        return {"slow": self.on_slow}

    async def on_slow(self, frame):
        self.running += 1
        assert self.running == 1, "two handlers at once"
        self.log.append(("frame", frame["n"]))
        await asyncio.sleep(0.05)
        self.running -= 1

    async def broadcast(self, event):
        self.running += 1
        assert self.running == 1, "two handlers at once"
        self.log.append(("event", event["n"]))
        try:
            await self.send_frame({"type": "notice", "n": event["n"]})
        finally:
            self.running -= 1

    async def disconnect(self, code):
        self.disconnected = True
        await super().disconnect(code)


class StubServer:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []
        self.open_gate = asyncio.Event()
        self.open_gate.set()
        self.gone = False

    async def receive(self):
        return await self.inbox.get()

    async def send(self, message):
        await self.open_gate.wait()
        if self.gone:
            raise OSError("client disconnected")  # uvicorn's ClientDisconnected is an OSError
        self.sent.append(message)

    def frame(self, frame: dict) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})


async def start_probe():
    probe, server = Probe(), StubServer()
    app = asyncio.ensure_future(probe({"type": "websocket", "headers": []}, server.receive, server.send))
    server.inbox.put_nowait({"type": "websocket.connect"})
    server.frame({"type": "auth"})
    for _ in range(100):
        if probe.authenticated:
            break
        await asyncio.sleep(0.01)
    assert probe.authenticated
    return probe, server, app


@pytest.mark.fast_realtime
async def test_a_frame_that_comes_while_an_event_is_being_sent_runs_after_it_and_before_the_rest():
    probe, server, app = await start_probe()
    server.open_gate.clear()  # the client stops reading: the first event's send waits
    for n in range(3):
        probe._deliver({"type": "broadcast", "frame": {"type": "notice"}, "n": n})
    await asyncio.sleep(0.05)
    server.frame({"type": "slow", "n": 100})
    await asyncio.sleep(0.05)
    assert probe.log == [("event", 0)]  # the frame waits for the event in hand
    server.open_gate.set()
    for _ in range(100):
        if len(probe.log) == 4:
            break
        await asyncio.sleep(0.01)
    assert probe.log == [("event", 0), ("frame", 100), ("event", 1), ("event", 2)]
    server.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(app, 2)


async def test_a_client_that_leaves_while_an_event_is_being_sent_still_gets_its_disconnect():
    """The send fails (the client is gone); the server's websocket.disconnect, already queued,
    then runs disconnect(): the customer's connection count and the groups are not left behind."""
    probe, server, app = await start_probe()
    await probe.join("probe.group")
    server.open_gate.clear()
    probe._deliver({"type": "broadcast", "frame": {"type": "notice"}, "n": 1})
    await asyncio.sleep(0.05)
    server.gone = True
    server.inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})
    server.open_gate.set()
    await asyncio.wait_for(app, 2)  # ends normally, no exception
    assert probe.disconnected and probe.groups_joined == set()


async def test_the_auth_deadline_waits_for_an_auth_frame_being_handled(monkeypatch):
    monkeypatch.setattr(consumers, "AUTH_TIMEOUT", 0.05)
    probe, server = Probe(), StubServer()

    async def slow_authenticate(frame):
        await asyncio.sleep(0.2)  # the deadline passes meanwhile
        probe.mark_authenticated()

    probe.authenticate = slow_authenticate
    app = asyncio.ensure_future(probe({"type": "websocket", "headers": []}, server.receive, server.send))
    server.inbox.put_nowait({"type": "websocket.connect"})
    await asyncio.sleep(0.01)
    server.frame({"type": "auth"})
    await asyncio.sleep(0.4)
    assert probe.authenticated
    assert [m for m in server.sent if m["type"] == "websocket.close"] == []
    server.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(app, 2)
