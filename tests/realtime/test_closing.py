"""A socket the server closes (4429 for a flood, 4401 for refused credentials) on a real
uvicorn server with the shipped WebSocket protocol: the consumer ends at its close, so the
frames the client had already sent are not answered after it (uvicorn refuses a send after a
close with a RuntimeError, logged as an ERROR), and ``disconnect()`` runs, so the customer is no
longer counted as connected. The server's log is read: no ERROR in it."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import websockets

from conversations.consumers import CLOSE_FLOODING, CLOSE_UNAUTHENTICATED
from conversations.customer_tokens import issue_visitor_token
from conversations.models import Customer
from tests.realtime.conftest import ORIGIN
from tests.servers import close_code, uvicorn_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records if r.levelno >= logging.ERROR]


@pytest.fixture
def server_log():
    """Every WARNING and above of the server in this process: the root logger's and uvicorn's
    (whose loggers do not propagate to the root)."""
    handler = Records()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def port(transactional_db, settings):
    from omnichannel.asgi import application

    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    with uvicorn_in_thread(application) as (_server, port):
        yield port


def wait_until(predicate, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_flooding_customer_is_closed_4429_disconnected_and_nothing_is_logged_as_an_error(port, live, server_log):
    token = issue_visitor_token(live)

    async def scenario() -> int:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/widget/{live.widget_key}/", origin=ORIGIN) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "ready"
            # Far more than the budget and the refusals allow, sent before reading anything:
            # the server reads frames after its close.
            for _ in range(400):
                await ws.send(json.dumps({"type": "typing"}))
            return await close_code(ws)

    assert asyncio.run(scenario()) == CLOSE_FLOODING
    customer = Customer.objects.get(widget=live)
    wait_until(
        lambda: Customer.objects.filter(pk=customer.pk, connection_count=0, disconnected_at__isnull=False).exists(),
        "the flooding customer is still counted as connected: disconnect() did not run",
    )
    assert not server_log.errors()


def test_frames_after_refused_credentials_are_not_answered_and_nothing_is_logged_as_an_error(
    port, persistent, server_log
):
    async def scenario() -> tuple[list[dict], int]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/widget/{persistent.widget_key}/", origin=ORIGIN) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "not-a-jwt"}))
            for _ in range(20):
                await ws.send(json.dumps({"type": "message.send", "client_id": "c", "body": "hi"}))
            frames = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        frames.append(json.loads(await ws.recv()))
            return frames, closed.value.rcvd.code

    frames, code = asyncio.run(scenario())
    assert code == CLOSE_UNAUTHENTICATED
    assert [f["code"] for f in frames] == ["invalid_token"]  # one answer, then the close
    assert not server_log.errors()
