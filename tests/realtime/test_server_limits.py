"""The ASGI server's own frame limit, on a real uvicorn process started as ``make run`` starts
it: frames over ``WS_MAX_SIZE`` bytes are refused by the server (close 1009) from their length,
before their payload is read; frames between ``MAX_FRAME`` and ``WS_MAX_SIZE`` reach the
consumer, which answers ``bad_frame`` and keeps the socket open. Needs PostgreSQL (the server
process shares the test's database), so it runs in CI."""

from __future__ import annotations

import asyncio
import json
import os
import struct

import pytest
import websockets

from omnichannel.limits import MAX_FRAME, WS_MAX_SIZE
from tests.realtime.conftest import customer_token
from tests.realtime.test_live_servers import live_servers
from tests.servers import close_code

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def port(tmp_path):
    with live_servers(1, tmp_path) as ports:
        yield ports[0]


async def ready_socket(port, widget, **options):
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/ws/widget/{widget.widget_key}/",
        origin="https://shop.example.com",
        max_size=None,
        **options,
    )
    await ws.send(json.dumps({"type": "auth", "token": customer_token(widget.authentication_setting)}))
    assert json.loads(await ws.recv())["type"] == "ready"
    return ws


@pytest.mark.parametrize("compression", ["deflate", None], ids=["permessage-deflate", "uncompressed"])
def test_frames_up_to_the_servers_limit_reach_the_consumer_and_larger_ones_close_1009(port, persistent, compression):
    """With permessage-deflate the frame on the wire is tiny: the limit is on the inflated size."""

    async def scenario():
        ws = await ready_socket(port, persistent, compression=compression)
        for size in (MAX_FRAME + 1, WS_MAX_SIZE):
            await ws.send("x" * size)
            assert json.loads(await ws.recv())["code"] == "bad_frame", size
        await ws.send(json.dumps({"type": "message.send", "client_id": "c1", "body": "still open"}))
        async with asyncio.timeout(10):
            while (frame := json.loads(await ws.recv()))["type"] != "message":
                pass
        assert frame["message"]["client_id"] == "c1"
        await ws.send("x" * (WS_MAX_SIZE + 1))
        return await close_code(ws)

    assert asyncio.run(scenario()) == 1009


def test_the_server_refuses_an_oversized_frame_from_its_header_without_waiting_for_the_payload(port, persistent):
    """A frame header announcing one byte over the limit, then only a kilobyte of it: the server
    closes 1009 at once. Had it waited to buffer the payload, no close would come."""

    async def scenario():
        ws = await ready_socket(port, persistent, compression=None)
        header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", WS_MAX_SIZE + 1) + os.urandom(4)  # FIN, text, masked
        ws.transport.write(header + b"x" * 1024)
        return await close_code(ws)

    assert asyncio.run(scenario()) == 1009
