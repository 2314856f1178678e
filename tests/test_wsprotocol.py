"""uvicorn's WebSocket protocol keeping less per socket (omnichannel/realtime/wsprotocol.py): the same
behaviour on the wire, without an asyncio.Queue, an asyncio.Event and the handshake's request and
response per connection."""

from __future__ import annotations

import asyncio
import socket

import pytest
import websockets

from omnichannel.realtime.wsprotocol import EventQueue, Flag, WebSocketProtocol
from tests.servers import uvicorn_in_thread

# Our protocol, whatever the stack: the stock one is uvicorn's own.
pytestmark = pytest.mark.fast_realtime


async def echo(scope, receive, send):
    """Accepts, then sends back every text frame until the client leaves."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})


@pytest.fixture
def server():
    with uvicorn_in_thread(echo, ws=WebSocketProtocol) as (server, port):
        yield server, port


def test_an_accepted_socket_keeps_no_handshake_and_no_asyncio_queue_or_event(server):
    uvicorn_server, port = server

    async def scenario():
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            (connection,) = uvicorn_server.server_state.connections
            assert type(connection) is WebSocketProtocol
            assert connection.request is None and connection.response is None
            assert type(connection.queue) is EventQueue and type(connection.writable) is Flag
            for n in range(50):  # frames still flow both ways, in order
                await ws.send(f"frame {n}")
            assert [await ws.recv() for _ in range(50)] == [f"frame {n}" for n in range(50)]

    asyncio.run(scenario())


def test_a_client_that_stops_reading_holds_the_servers_send_until_it_reads_again(server):
    """Back-pressure: the transport pauses writing, ``send`` waits on the flag, and every frame
    still arrives once the client reads again."""
    uvicorn_server, port = server
    big = "x" * 30_000  # under the server's frame limit (WS_MAX_SIZE)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no autotuning to megabytes
    client.connect(("127.0.0.1", port))

    async def scenario():
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/", sock=client, max_queue=1, max_size=None, compression=None
        ) as ws:
            ws.transport.pause_reading()
            (connection,) = uvicorn_server.server_state.connections

            async def send_all():
                for _ in range(400):  # 12 MB echoed back to a client that does not read
                    await ws.send(big)

            sender = asyncio.ensure_future(send_all())
            held = False
            async with asyncio.timeout(10):
                while not held:  # the server's send is waiting for the client
                    held = not connection.writable.is_set()
                    await asyncio.sleep(0.001)
            ws.transport.resume_reading()
            received = 0
            async with asyncio.timeout(20):
                while received < 400:
                    assert await ws.recv() == big
                    received += 1
                await sender
            return held, received

    assert asyncio.run(scenario()) == (True, 400)


async def test_the_event_queue_hands_items_over_in_order_and_waits_when_empty():
    queue = EventQueue()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert queue.qsize() == 2 and not queue.empty()
    assert [await queue.get(), await queue.get()] == [1, 2]
    assert queue.empty()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait(3)
    assert await asyncio.wait_for(getter, 1) == 3


async def test_a_cancelled_get_leaves_the_event_queue_usable():
    queue = EventQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    queue.put_nowait("after")
    assert await asyncio.wait_for(queue.get(), 1) == "after"


async def test_the_flag_wakes_every_waiter_when_set_and_holds_them_while_clear():
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True, True]
    assert await flag.wait() is True  # set: no waiting
    flag.clear()
    assert not flag.is_set()
    late = asyncio.ensure_future(flag.wait())
    cancelled = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert not late.done()
    flag.set()
    assert await asyncio.wait_for(late, 1) is True
