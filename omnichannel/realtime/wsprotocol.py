"""uvicorn's WebSocket protocol (websockets' sans-I/O implementation) with less to keep per idle
socket: every real start of the server passes ``--ws omnichannel.realtime.wsprotocol:WebSocketProtocol``
(``omnichannel.limits.uvicorn_args``).

The frames on the wire, the handshake, pings, back-pressure and closing are uvicorn's own; only
what each connection holds changes:

- its queue of ASGI events for the application: a list and one waiting future in place of an
  ``asyncio.Queue`` (three deques and an ``Event``);
- the flag its ``send`` waits on while the transport is paused: the same, in place of an
  ``asyncio.Event`` and its deque;
- the handshake's request and response (their header objects), which uvicorn keeps
  for the life of the socket though nothing reads them once the socket is accepted.

Why and how much: docs/decisions.md, "uvicorn's WebSocket protocol keeps less". No Django import:
uvicorn imports this before the application."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class EventQueue:
    """What uvicorn's protocol uses of ``asyncio.Queue``, for one reader (the application's
    ``receive``, awaited by one task at a time)."""

    __slots__ = ("_getter", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                await getter
            finally:
                self._getter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """What uvicorn's protocol uses of ``asyncio.Event``: set, clear, wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = EventQueue()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def start_keepalive(self) -> None:
        # uvicorn calls this once, right after it sent the accepting response: from here on
        # nothing reads the handshake's request and response.
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()
