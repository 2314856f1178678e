"""Servers for tests: a free port, and uvicorn in a thread of the test process with the
WebSocket protocol every real start of the server uses (omnichannel.limits.uvicorn_args): ours,
or uvicorn's own with OMNICHANNEL_STOCK_REALTIME."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
import websockets
from django.conf import settings

from omnichannel.limits import WS_MAX_SIZE, ws_protocol


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def uvicorn_in_thread(
    app, port: int | None = None, timeout: float = 20, ws=None
) -> Iterator[tuple[uvicorn.Server, int]]:
    """(the server, its port) while the block runs; the server stops after it. ``ws``: uvicorn's
    WebSocket protocol, by default the stack's (omnichannel.limits.ws_protocol)."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=ws or ws_protocol(settings.OMNICHANNEL_STOCK_REALTIME),
        ws_max_size=WS_MAX_SIZE,
        proxy_headers=False,  # --no-proxy-headers: the peer is the client (omnichannel.addresses)
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield server, port
    finally:
        server.should_exit = True
        thread.join(10)


async def close_code(ws, timeout: float = 10) -> int:
    """The code a real server closed a ``websockets`` client with, reading whatever came before."""
    async with asyncio.timeout(timeout):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    return closed.value.rcvd.code
