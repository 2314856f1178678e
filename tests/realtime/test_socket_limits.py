"""Limits of both sockets (widget and agent), in process: the per-socket frame budget and the
flood close, frame size in bytes, text that is not Unicode, nesting, the auth deadline and
origins. The real server's own size limit (close 1009) is in test_live_servers.py.

The frame budget runs on ``consumers.monotonic``; these tests stop that clock (``clock``), so
what is counted is frames, never how fast the machine sends them."""

from __future__ import annotations

import json
import logging

import pytest
from channels.db import database_sync_to_async as in_db

from agents.consumers import AgentConsumer
from conversations import consumers
from conversations.consumers import WidgetConsumer
from omnichannel import ratelimit
from omnichannel.limits import MAX_FRAME
from tests.factories import api_key
from tests.realtime.conftest import customer_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _nothing_logged_as_an_error(caplog):
    """A limit or a flood is the server working as meant: never an ERROR in its log."""
    yield
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, errors


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    stopped = Clock()
    monkeypatch.setattr(consumers, "monotonic", stopped)
    return stopped


async def open_widget(socket, persistent, sub="carol"):
    s = socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": customer_token(persistent.authentication_setting, sub=sub)})
    assert (await s.next())["type"] == "ready"
    return s


async def open_agent(socket, agent):
    key = await in_db(lambda: api_key(agent.user))()
    s = socket("/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send({"type": "auth", "token": key})
    assert (await s.until(lambda f: f["type"] == "ready"))["type"] == "ready"
    return s


SOCKETS = {"widget": (open_widget, WidgetConsumer), "agent": (open_agent, AgentConsumer)}


@pytest.fixture(params=list(SOCKETS))
async def authenticated(request, socket, persistent, alice):
    """(an authenticated socket of each kind, its consumer class); the auth frame spent one token."""
    opener, consumer = SOCKETS[request.param]
    s = await opener(socket, persistent) if request.param == "widget" else await opener(socket, alice)
    return s, consumer


async def answers(s, count: int) -> list[str]:
    return [(await s.next())["code"] for _ in range(count)]


# --- the per-socket frame budget ------------------------------------------------------------------


async def test_every_kind_of_frame_spends_the_sockets_budget_then_is_rate_limited_with_a_retry_hint(
    clock, authenticated
):
    s, consumer = authenticated
    left = consumer.frame_burst - 1  # the auth frame spent one
    kinds = ["{", json.dumps({"type": "dance"}), b"\x00binary", "x" * (MAX_FRAME + 1)]
    for n in range(left):
        kind = kinds[n % len(kinds)]
        if isinstance(kind, bytes):
            await s.communicator.send_to(bytes_data=kind)
        else:
            await s.send(kind)
    assert set(await answers(s, left)) == {"bad_frame"}
    await s.send({"type": "typing", "conversation_id": 1})
    refused = await s.next()
    assert refused["code"] == "rate_limited" and "client_id" not in refused  # refused unread
    assert refused["retry_after"] == pytest.approx(1 / consumer.frame_rate, abs=0.001)
    clock.now += refused["retry_after"]
    await s.send("{")
    assert (await s.next())["code"] == "bad_frame"  # one token later, read again


async def test_a_socket_over_its_budget_stays_open_and_works_once_it_slows_down(clock, socket, persistent):
    s = await open_widget(socket, persistent)
    for _ in range(WidgetConsumer.frame_burst - 1):
        await s.send({"type": "typing"})  # no conversation yet: no answer, but a token spent
    await s.send({"type": "message.send", "client_id": "early", "body": "Hi"})
    assert (await s.next())["code"] == "rate_limited"
    clock.now += 1
    await s.send({"type": "message.send", "client_id": "later", "body": "Hi"})
    echo = await s.until(lambda f: f["type"] == "message")
    assert echo["message"]["client_id"] == "later"


async def test_a_flood_far_beyond_the_budget_closes_the_socket_with_4429(clock, authenticated):
    s, consumer = authenticated
    for _ in range(2 * consumer.frame_burst):  # spends the budget, then every refusal allowed
        await s.send("{")
    codes = await answers(s, 2 * consumer.frame_burst - 1)
    assert codes.count("bad_frame") == consumer.frame_burst - 1
    assert codes.count("rate_limited") == consumer.frame_burst
    await s.send("{")
    last = await s.next()
    assert (last["code"], last["detail"]) == ("rate_limited", "Too many frames for too long; closing.")
    assert await s.closed() == consumers.CLOSE_FLOODING


@pytest.mark.parametrize(("times_the_rate", "closed"), [(2, False), (3, True)])
async def test_only_a_sustained_flood_of_more_than_twice_the_rate_is_closed(
    clock, authenticated, times_the_rate, closed
):
    s, consumer = authenticated
    step = 1 / (consumer.frame_rate * times_the_rate)
    codes = []
    for _ in range(8 * consumer.frame_burst):  # at three times the rate, both budgets run out
        clock.now += step
        await s.send("{")
        answer = await s.next()  # every frame is answered, read or not
        codes.append(answer["code"])
        if answer["detail"] == "Too many frames for too long; closing.":
            assert await s.closed() == consumers.CLOSE_FLOODING
            break
    assert (s.closed_with == consumers.CLOSE_FLOODING) is closed
    assert set(codes) == {"bad_frame", "rate_limited"}


async def test_the_per_socket_budget_makes_no_redis_call(clock, socket, persistent, monkeypatch):
    s = await open_widget(socket, persistent)

    def no_redis():
        raise AssertionError("the per-socket budget called Redis")

    monkeypatch.setattr(ratelimit, "_async_script", no_redis)
    for _ in range(WidgetConsumer.frame_burst):  # the auth frame spent one: the last is refused
        await s.send({"type": "typing"})
    assert (await s.next())["code"] == "rate_limited"
    assert await s.communicator.receive_nothing(0.2)


async def test_the_per_customer_message_limit_says_when_to_retry(socket, persistent):
    s = await open_widget(socket, persistent, sub="hasty")
    for i in range(21):
        await s.send({"type": "message.send", "client_id": f"m{i}", "body": f"{i}"})
    error = await s.until(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("rate_limited", "m20")
    assert 0 < error["retry_after"] <= consumers.MESSAGE_RATE[1]


# --- frame size, text, nesting --------------------------------------------------------------------


async def test_the_size_limit_counts_bytes_not_characters(socket, persistent):
    """Was: 11,000 three-byte characters (33,000 bytes) passed the 32 KiB check, which counted
    characters, while the server's --ws-max-size counts bytes."""
    s = await open_widget(socket, persistent)
    body = "€" * 11_000
    await s.send(json.dumps({"type": "message.send", "client_id": "big", "body": body}, ensure_ascii=False))
    error = await s.next()
    assert error["code"] == "bad_frame"
    await s.send(json.dumps({"type": "message.send", "client_id": "ok", "body": "€" * 4000}, ensure_ascii=False))
    assert (await s.until(lambda f: f["type"] == "message"))["message"]["client_id"] == "ok"


LONE_SURROGATES = [
    '{"type": "message.send", "client_id": "x", "body": "\\ud800"}',
    '{"type": "message.send", "client_id": "\\udfff", "body": "hi"}',
    '{"type": "message.send", "client_id": "x", "body": "a\\ud83d"}',  # half an emoji
    '{"type": "typing", "\\ud800": 1}',
]


@pytest.mark.parametrize("frame", LONE_SURROGATES)
async def test_a_lone_surrogate_is_a_bad_frame_not_a_dropped_socket(socket, persistent, frame):
    """Was: the body reached PostgreSQL, psycopg raised UnicodeEncodeError and the socket died."""
    s = await open_widget(socket, persistent)
    await s.send(frame)
    assert (await s.next())["code"] == "bad_frame"
    await s.send('{"type": "message.send", "client_id": "pair", "body": "\\ud83d\\ude00"}')  # a whole emoji
    echo = await s.until(lambda f: f["type"] == "message")
    assert echo["message"]["body"] == "😀"


@pytest.mark.parametrize("path", ["widget", "agent"])
async def test_a_lone_surrogate_in_the_auth_token_is_refused_not_a_crash(socket, persistent, path):
    """Was: the widget's JWT check and the agent's token lookup raised UnicodeEncodeError."""
    s = socket(f"/ws/widget/{persistent.widget_key}/" if path == "widget" else "/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send('{"type": "auth", "token": "\\ud800"}')
    assert (await s.next())["code"] == "bad_frame"
    await s.send('{"type": "auth", "token": "still-wrong"}')
    assert (await s.next())["code"] == "invalid_token"  # the socket was still reading


async def test_json_nested_too_deep_is_a_bad_frame_not_a_dropped_socket(authenticated):
    """Was: json.loads raised RecursionError, which no handler caught."""
    s, _ = authenticated
    await s.send("[" * 5000 + "]" * 5000)
    assert (await s.next())["code"] == "bad_frame"
    await s.send('{"x": ' * 3000 + "1" + "}" * 3000)
    assert (await s.next())["code"] == "bad_frame"
    await s.send("{")
    assert (await s.next())["code"] == "bad_frame"


# --- the auth deadline and origins, on both sockets -----------------------------------------------


@pytest.mark.parametrize("path", ["/ws/widget/persistent/", "/ws/agent/"])
async def test_bad_frames_do_not_keep_an_unauthenticated_socket_past_the_deadline(
    socket, persistent, monkeypatch, path
):
    monkeypatch.setattr(consumers, "AUTH_TIMEOUT", 0.3)
    s = socket(path, origin="http://testserver")
    assert await s.connect()
    for _ in range(3):
        await s.send("{")  # answered, but no substitute for an auth frame
        assert (await s.next())["code"] == "bad_frame"
    error = await s.next(3)
    assert error["code"] == "authentication_required"
    assert await s.closed() == consumers.CLOSE_UNAUTHENTICATED


def test_the_auth_deadline_is_the_protocols_ten_seconds():
    """docs/protocol.md: the auth frame comes within 10 s. (The deadline tests shorten it.)"""
    assert consumers.AUTH_TIMEOUT == 10


@pytest.mark.parametrize("origin", ["null", "https://shop.example.com.evil.example", "http://shop.example.com"])
async def test_lookalike_and_null_origins_are_refused_by_the_widget(socket, persistent, origin):
    s = socket(f"/ws/widget/{persistent.widget_key}/", origin=origin)
    assert await s.connect()
    assert (await s.next())["code"] == "origin_not_allowed"
    assert await s.closed() == consumers.CLOSE_FORBIDDEN


@pytest.mark.parametrize("origin", ["null", "http://testserver.evil.example", "http://evil.example"])
async def test_the_agent_socket_refuses_foreign_and_null_origins_at_the_handshake(socket, alice, origin):
    s = socket("/ws/agent/", origin=origin)
    assert not await s.connect()
