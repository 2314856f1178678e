"""At most ``MAX_SOCKETS_PER_ADDRESS`` open sockets per client address, counted in Redis across
server processes (omnichannel/socketcap.py); the next one gets ``rate_limited`` and is closed
with 4429. Two processes are two ``SocketCounts`` with their own process ids here, and two real
server processes in test_live_servers.py. The heartbeats' clock is stopped (``clock``)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.conf import settings

from conversations.consumers import CLOSE_FLOODING
from omnichannel import ratelimit, socketcap
from tests.realtime.conftest import customer_token

pytestmark = pytest.mark.django_db(transaction=True)

ATTACKER = "203.0.113.7"


@pytest.fixture(autouse=True)
def no_counts_from_earlier_tests():
    redis = ratelimit._client(settings.REDIS_URL)
    for key in redis.scan_iter("omnichannel:sockets:*"):
        redis.delete(key)


@pytest.fixture
def three_per_address(settings):
    settings.MAX_SOCKETS_PER_ADDRESS = 3


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    stopped = Clock()
    monkeypatch.setattr(socketcap, "clock", stopped)
    return stopped


def held_in_redis(address: str = ATTACKER) -> dict[str, int]:
    raw = ratelimit._client(settings.REDIS_URL).hgetall(f"omnichannel:sockets:{address}")
    return {process.decode(): int(count) for process, count in raw.items()}


async def open_widget(socket, widget, address: str = ATTACKER, port: int = 40000, **kwargs):
    """A customer's socket from ``address``: True once ready; False when it was refused, which
    must be the cap's ``rate_limited`` and 4429."""
    s = socket(f"/ws/widget/{widget.widget_key}/", client=(address, port), **kwargs)
    assert await s.connect()
    await s.send({"type": "auth", "token": customer_token(widget.authentication_setting, sub=f"c{port}")})
    frame = await s.next()
    if frame["type"] == "ready":
        return s
    assert frame == {"type": "error", "code": "rate_limited", "detail": "Too many open sockets from this address."}
    assert await s.closed() == CLOSE_FLOODING
    return None


async def test_one_socket_more_than_the_cap_from_one_address_is_closed_with_4429(
    socket, persistent, three_per_address, caplog
):
    """The probe held 1,000 unauthenticated sockets from one address."""
    caplog.set_level(logging.INFO)
    for port in range(3):
        assert await open_widget(socket, persistent, port=port)
    assert not await open_widget(socket, persistent, port=3)
    assert await open_widget(socket, persistent, address="198.51.100.8")  # another address
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_unauthenticated_sockets_count_too_on_both_sockets(socket, persistent, alice, three_per_address):
    opened = [socket(f"/ws/widget/{persistent.widget_key}/", client=(ATTACKER, n)) for n in range(2)]
    opened.append(socket("/ws/agent/", origin="http://testserver", client=(ATTACKER, 2)))
    for s in opened:
        assert await s.connect()
    refused = socket("/ws/agent/", origin="http://testserver", client=(ATTACKER, 3))
    assert await refused.connect()
    assert (await refused.next())["code"] == "rate_limited"
    assert await refused.closed() == CLOSE_FLOODING


async def test_a_closed_socket_gives_its_place_back(socket, persistent, three_per_address):
    sockets = [await open_widget(socket, persistent, port=port) for port in range(3)]
    await sockets[0].close()
    assert held_in_redis() == {socketcap.counts().process: 2}
    assert await open_widget(socket, persistent, port=3)


async def test_the_place_is_given_back_however_the_consumer_ends(socket, persistent, three_per_address):
    # The server closes it (a token that is not valid: 4401) and the client leaves.
    refused = socket(f"/ws/widget/{persistent.widget_key}/", client=(ATTACKER, 1))
    assert await refused.connect()
    await refused.send({"type": "auth", "token": "not a token"})
    assert await refused.closed() == 4401
    # The consumer is cancelled (the server shutting down, say) while it waits for a frame.
    cancelled = socket(f"/ws/widget/{persistent.widget_key}/", client=(ATTACKER, 2))
    assert await cancelled.connect()
    assert socketcap.counts().counts == {ATTACKER: 1}
    cancelled.communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled.communicator.future
    cancelled.finished = True
    assert socketcap.counts().counts == {}
    assert held_in_redis() == {}


async def test_rotating_x_forwarded_for_does_not_escape_the_cap(socket, persistent, three_per_address):
    for port in range(3):
        headers = [(b"x-forwarded-for", f"192.0.2.{port}".encode())]
        assert await open_widget(socket, persistent, port=port, headers=headers)
    assert not await open_widget(socket, persistent, port=3, headers=[(b"x-forwarded-for", b"192.0.2.99")])


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_cap(
    socket, persistent, three_per_address, settings
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    first, second = [(b"x-forwarded-for", b"192.0.2.1")], [(b"x-forwarded-for", b"192.0.2.2")]
    for port in range(3):
        assert await open_widget(socket, persistent, "10.0.0.2", port, headers=first)
    assert not await open_widget(socket, persistent, "10.0.0.2", 3, headers=first)
    assert await open_widget(socket, persistent, "10.0.0.2", 4, headers=second)


async def test_the_cap_counts_the_sockets_of_every_server_process(clock):
    client = ratelimit.async_client()
    one, two = socketcap.SocketCounts(client, "one"), socketcap.SocketCounts(client, "two")
    assert await one.take(ATTACKER, 3) and await one.take(ATTACKER, 3)
    assert await two.take(ATTACKER, 3)
    assert not await two.take(ATTACKER, 3)
    assert not await one.take(ATTACKER, 3)
    assert held_in_redis() == {"one": 2, "two": 1}
    await one.give_back(ATTACKER)
    assert await two.take(ATTACKER, 3)
    assert held_in_redis() == {"one": 1, "two": 2}


async def test_a_killed_process_stops_counting_once_its_heartbeat_is_older_than_the_ttl(clock):
    client = ratelimit.async_client()
    killed, alive, other = (socketcap.SocketCounts(client, name) for name in ("killed", "alive", "other"))
    for _ in range(2):
        assert await killed.take(ATTACKER, 3)
    assert await alive.take(ATTACKER, 3)
    clock.now += socketcap.HEARTBEAT
    await alive.beat()  # "killed" beats no more
    clock.now += socketcap.TTL - socketcap.HEARTBEAT - 1
    assert not await other.take(ATTACKER, 3)  # killed's two still count within the TTL
    clock.now += 2
    assert await other.take(ATTACKER, 3)  # now only alive's one (and other's)
    assert held_in_redis() == {"alive": 1, "other": 1}


async def test_a_heartbeat_writes_the_processs_own_counts_again(clock):
    """A decrement lost (Redis unreachable when a socket ended) heals at the next heartbeat."""
    client = ratelimit.async_client()
    one = socketcap.SocketCounts(client, "one")
    assert await one.take(ATTACKER, 3)
    ratelimit._client(settings.REDIS_URL).hincrby(f"omnichannel:sockets:{ATTACKER}", "one", 5)
    assert not await socketcap.SocketCounts(client, "two").take(ATTACKER, 3)
    await one.beat()
    assert held_in_redis() == {"one": 1}


async def test_while_redis_is_unreachable_sockets_are_let_in_and_counted_in_memory(
    socket, persistent, three_per_address, caplog, settings
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # where the counts are kept (not the channel layer)
    for port in range(4):
        assert await open_widget(socket, persistent, port=port)
    assert socketcap.counts().counts == {ATTACKER: 4}
    assert "socket cap not checked, Redis is unreachable" in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_no_cap_makes_no_redis_call(socket, persistent, settings, monkeypatch):
    settings.MAX_SOCKETS_PER_ADDRESS = 0

    def no_counts():
        raise AssertionError("no cap, no count")

    monkeypatch.setattr(socketcap, "counts", no_counts)
    for port in range(5):
        assert await open_widget(socket, persistent, port=port)


def test_the_default_cap_is_200():
    assert settings.MAX_SOCKETS_PER_ADDRESS == 200
