"""WebSocket tests: Channels' WebsocketCommunicator against the real ASGI application, the
real (Redis) channel layer, and a database the consumer threads can see."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from omnichannel.asgi import application
from tests.cast import (  # noqa: F401 - fixtures
    alice,
    bob,
    broadcasts,
    commit,
    customer,
    eager_celery,
    live,
    other_customer,
    persistent,
    queue,
    visitor,
)
from tests.keys import rsa_key

ORIGIN = "https://shop.example.com"


def customer_token(setting, sub="carol", **claims) -> str:
    now = datetime.now(UTC)
    payload = {"sub": sub, "iss": setting.issuer, "iat": now, "exp": now + timedelta(minutes=5), **claims}
    return jwt.encode(payload, rsa_key(), algorithm="RS256")


class Socket:
    """A client socket that keeps every frame it received, in order."""

    def __init__(
        self,
        path: str,
        *,
        origin: str | None = ORIGIN,
        headers: list | None = None,
        host: str = "testserver",
        client: tuple[str, int] | None = None,
        scheme: str | None = None,
    ) -> None:
        """``client``: the TCP peer (ASGI ``scope["client"]``; Channels' communicator sets none);
        ``scheme``: ``ws`` or ``wss`` (none: ``ws``, as ASGI says)."""
        all_headers = [(b"host", host.encode()), *(headers or [])]
        if origin is not None:
            all_headers.append((b"origin", origin.encode()))
        self.communicator = WebsocketCommunicator(application, path, headers=all_headers)
        # The application is called with the scope on the first event, so these still count.
        if client is not None:
            self.communicator.scope["client"] = client
        if scheme is not None:
            self.communicator.scope["scheme"] = scheme
        self.frames: list[dict] = []
        self.matched: set[int] = set()
        self.closed_with: int | None = None
        self.finished = False

    async def connect(self) -> bool:
        connected, _subprotocol = await self.communicator.connect(timeout=5)
        return connected

    async def send(self, frame: dict | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self, timeout: float = 5) -> dict:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            self.closed_with = output.get("code")
            raise ConnectionError(f"closed with {self.closed_with}")
        frame = json.loads(output["text"])
        self.frames.append(frame)
        return frame

    async def until(self, predicate, timeout: float = 5) -> dict:
        """The first frame, received already or from now on, that matches and was not returned
        by an earlier call (frames can arrive in any order between two calls)."""
        for index, frame in enumerate(self.frames):
            if index not in self.matched and predicate(frame):
                self.matched.add(index)
                return frame
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame; got {self.frames}")
            try:
                frame = await self.next(remaining)
            except TimeoutError:
                raise AssertionError(f"no matching frame within {timeout}s; got {self.frames}") from None
            if predicate(frame):
                self.matched.add(len(self.frames) - 1)
                return frame

    async def drain(self, wait: float = 0.3) -> list[dict]:
        """Frames that arrive until the socket stays quiet for ``wait`` seconds. (A timed-out
        receive would cancel the application, so quiet is tested with receive_nothing.)"""
        frames = []
        while not await self.communicator.receive_nothing(wait):
            frames.append(await self.next())
        return frames

    async def closed(self, timeout: float = 5) -> int | None:
        while self.closed_with is None:
            try:
                await self.next(timeout)
            except ConnectionError:
                break
        await self.close()  # the browser would now send the disconnect; let the consumer finish
        return self.closed_with

    async def close(self) -> None:
        if not self.finished:
            self.finished = True
            await self.communicator.disconnect(timeout=3)


def logged_in(user) -> Client:
    """A test client signed in as ``user`` (a session in the database)."""
    client = Client()
    client.force_login(user)
    return client


async def session_socket(socket, client: Client) -> Socket:
    """An agent socket opened with ``client``'s session cookie: ``ready`` without an auth frame."""
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    s = socket(
        "/ws/agent/",
        origin="http://testserver",
        headers=[(b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())],
    )
    assert await s.connect()
    assert (await s.next())["type"] == "ready"
    return s


def messages(frames) -> list[dict]:
    return [f["message"] for f in frames if f["type"] == "message"]


@pytest.fixture
async def socket():
    """``socket(path, origin=..., headers=...)``; every socket still open at the end of the test
    is disconnected, so no consumer outlives its test's event loop."""
    opened: list[Socket] = []

    def make(path: str, **kwargs) -> Socket:
        s = Socket(path, **kwargs)
        opened.append(s)
        return s

    yield make
    for s in opened:
        try:
            await s.close()
        except Exception:  # noqa: BLE001 - a consumer that already failed the test
            pass
