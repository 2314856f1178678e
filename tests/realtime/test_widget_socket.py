"""The customer's socket, /ws/widget/<key>/, frame by frame (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from channels.db import database_sync_to_async as in_db
from django.db import connection, transaction

from agents.models import Presence
from conversations import consumers, services
from conversations.customer_tokens import issue_visitor_token
from conversations.models import Conversation, Customer, Message
from tests.realtime.conftest import customer_token, messages

pytestmark = pytest.mark.django_db(transaction=True)


async def connect_customer(socket, widget, token, after_seq=0, **kwargs):
    s = socket(f"/ws/widget/{widget.widget_key}/", **kwargs)
    assert await s.connect()
    await s.send({"type": "auth", "token": token, "after_seq": after_seq})
    ready = await s.next()
    assert ready["type"] == "ready", ready
    return s, ready


async def test_ready_then_send_echoes_the_message_as_the_acknowledgement(socket, persistent):
    s, ready = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    assert ready == {"type": "ready", "conversation": None, "messages": [], "has_more": False}
    await s.send({"type": "message.send", "client_id": "c-1", "body": "  Hello  "})
    echo = await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c-1")
    assert echo["message"]["body"] == "Hello" and echo["message"]["seq"] == 1
    assert echo["message"]["sender"] == "customer"
    offline = await s.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "offline_persistent")
    assert offline["message"]["seq"] == 2 and offline["message"]["sender"] == "system"
    conversation = await s.until(lambda f: f["type"] == "conversation")
    assert conversation["conversation"]["status"] == "open"
    assert conversation["conversation"]["mode"] == "persistent"
    assert conversation["conversation"]["customer_can_end"] is False
    seqs = [m["seq"] for m in messages(s.frames)]
    assert len(seqs) == len(set(seqs)), "a message frame arrived twice"
    await s.close()


async def test_persistent_chat_from_first_message_through_waiting_and_return(socket, persistent, alice):
    await in_db(services.agent_presence_set)(agent=alice, presence=Presence.OFFLINE)
    token = customer_token(persistent.authentication_setting)
    s, _ = await connect_customer(socket, persistent, token)
    await s.send({"type": "message.send", "client_id": "c-1", "body": "Hi"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "offline_persistent")

    await in_db(services.agent_presence_set)(agent=alice, presence=Presence.AVAILABLE)
    joined = await s.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "agent_joined")
    assert "Alice" in joined["message"]["body"]
    active = await s.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    assert active["conversation"]["agent"]["id"] == alice.pk
    conversation_id = active["conversation"]["id"]

    await in_db(services.conversation_wait)(conversation_id=conversation_id, agent=alice)
    await s.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "moved_to_waiting")
    await s.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "waiting")
    await s.close()

    # The customer comes back later, in a new socket, and writes: the same agent gets it back.
    s2, ready = await connect_customer(socket, persistent, token)
    assert ready["conversation"]["status"] == "waiting"
    assert [m["seq"] for m in ready["messages"]] == list(range(1, ready["conversation"]["last_seq"] + 1))
    await s2.send({"type": "message.send", "client_id": "c-2", "body": "I'm back"})
    back = await s2.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    assert back["conversation"]["agent"]["id"] == alice.pk
    await s2.close()


async def test_reconnect_with_after_seq_gets_exactly_what_was_missed(socket, persistent, alice):
    token = customer_token(persistent.authentication_setting)
    s, _ = await connect_customer(socket, persistent, token)
    await s.send({"type": "message.send", "client_id": "c-1", "body": "Hi"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "agent_joined")
    last_seen = max(m["seq"] for m in messages(s.frames))
    await s.close()

    conversation = await in_db(Conversation.objects.get)()
    for text in ("One", "Two", "Three"):
        await in_db(services.agent_message_send)(conversation_id=conversation.pk, agent=alice, body=text)

    s2, ready = await connect_customer(socket, persistent, token, after_seq=last_seen)
    assert [m["body"] for m in ready["messages"]] == ["One", "Two", "Three"]
    assert [m["seq"] for m in ready["messages"]] == [last_seen + 1, last_seen + 2, last_seen + 3]
    await in_db(services.agent_message_send)(conversation_id=conversation.pk, agent=alice, body="Four")
    live = await s2.until(lambda f: f["type"] == "message")
    assert live["message"]["body"] == "Four" and live["message"]["seq"] == last_seen + 4
    assert not messages(await s2.drain())  # nothing twice
    await s2.close()


async def test_resending_after_a_lost_acknowledgement_never_duplicates(socket, persistent):
    token = customer_token(persistent.authentication_setting)
    s, _ = await connect_customer(socket, persistent, token)
    await s.send({"type": "message.send", "client_id": "same", "body": "Once"})
    first = await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "same")
    await s.close()
    s2, _ = await connect_customer(socket, persistent, token)
    await s2.send({"type": "message.send", "client_id": "same", "body": "Once"})
    again = await s2.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "same")
    assert again["message"] == first["message"]
    assert await in_db(Message.objects.filter(client_id="same").count)() == 1
    await s2.close()


async def test_two_tabs_of_one_customer_stay_in_sync(socket, persistent, alice):
    token = customer_token(persistent.authentication_setting)
    tab1, _ = await connect_customer(socket, persistent, token)
    tab2, _ = await connect_customer(socket, persistent, token)
    await tab1.send({"type": "message.send", "client_id": "t1", "body": "From tab 1"})
    seen = await tab2.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "t1")
    assert seen["message"]["body"] == "From tab 1"
    await tab2.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "agent_joined")
    await tab1.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "agent_joined")
    await tab1.close()
    await tab2.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ({"type": "dance"}, "bad_frame"),
        ({"type": "message.send", "body": "no client id"}, "bad_frame"),
        ({"type": "message.send", "client_id": "x"}, "bad_frame"),
        ({"type": "message.send", "client_id": "x", "body": 42}, "bad_frame"),
        ({"type": "message.send", "client_id": "x", "body": "   "}, "body_empty"),
        ({"type": "message.send", "client_id": "x", "body": "x" * 4001}, "body_too_long"),
        ({"type": "message.send", "client_id": "x" * 65, "body": "hi"}, "validation_error"),
        ({"type": "message.send", "client_id": "x", "body": "a\u0000b"}, "validation_error"),
        ({"type": "message.send", "client_id": "x\u0000", "body": "hi"}, "validation_error"),
        ({"type": "auth", "token": "again", "after_seq": -1}, "bad_frame"),  # a renewal with a bad seq
        ("x" * 40_000, "bad_frame"),
    ],
)
async def test_bad_frames_get_an_error_with_a_stable_code_and_the_socket_stays_open(socket, persistent, frame, code):
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    await s.send(frame)
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == code and error["detail"]
    await s.send({"type": "message.send", "client_id": "after", "body": "still here"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "after")
    await s.close()


async def test_too_many_messages_are_rate_limited_per_customer(socket, persistent):
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting, sub="fast"))
    for i in range(21):
        await s.send({"type": "message.send", "client_id": f"m{i}", "body": f"{i}"})
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == "rate_limited" and error["client_id"] == "m20"
    await s.close()


async def test_redis_unreachable_for_the_rate_limit_is_an_unavailable_frame_and_the_socket_stays_open(
    socket, persistent, monkeypatch
):
    """Seen in the benchmark: an exception from Redis escaped the consumer and dropped the socket."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from omnichannel import ratelimit

    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))

    async def unreachable(*args):
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(ratelimit, "aallow", unreachable)
    await s.send({"type": "message.send", "client_id": "c-1", "body": "Hello?"})
    error = await s.until(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("unavailable", "c-1")
    assert await in_db(Message.objects.count)() == 0
    monkeypatch.undo()
    await s.send({"type": "message.send", "client_id": "c-1", "body": "Hello?"})
    echo = await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c-1")
    assert echo["message"]["seq"] == 1
    await s.close()


async def test_an_invalid_token_closes_with_4401(socket, persistent):
    s = socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": "nope", "after_seq": 0})
    error = await s.next()
    assert error["code"] == "invalid_token"
    assert await s.closed() == 4401


async def test_a_visitor_token_on_an_authenticated_widget_requires_authentication(socket, live):
    def require_a_jwt():
        token = issue_visitor_token(live)
        from tests.factories import AuthenticationSettingFactory

        live.authentication_setting = AuthenticationSettingFactory()
        live.save()
        return token

    token = await in_db(require_a_jwt)()
    s = socket(f"/ws/widget/{live.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": token})
    assert (await s.next())["code"] == "authentication_required"
    assert await s.closed() == 4401


async def test_another_widgets_visitor_token_is_an_invalid_token(socket, persistent, live):
    s = socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": await in_db(issue_visitor_token)(live)})
    assert (await s.next())["code"] == "invalid_token"
    assert await s.closed() == 4401


async def test_a_frame_before_auth_closes_with_4401(socket, persistent):
    s = socket(f"/ws/widget/{persistent.widget_key}/")
    assert await s.connect()
    await s.send({"type": "message.send", "client_id": "x", "body": "hi"})
    assert (await s.next())["code"] == "authentication_required"
    assert await s.closed() == 4401


@pytest.mark.parametrize("path", ["/ws/widget/persistent/", "/ws/agent/"])
async def test_no_auth_frame_within_the_deadline_closes_with_4401(socket, persistent, monkeypatch, path):
    monkeypatch.setattr(consumers, "AUTH_TIMEOUT", 0.2)
    s = socket(path, origin="http://testserver")
    assert await s.connect()
    assert (await s.next(2))["code"] == "authentication_required"
    assert await s.closed() == 4401


async def test_an_authenticated_socket_outlives_the_auth_deadline(socket, persistent, monkeypatch):
    monkeypatch.setattr(consumers, "AUTH_TIMEOUT", 0.2)
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    assert await s.communicator.receive_nothing(0.5)
    await s.send({"type": "message.send", "client_id": "c1", "body": "still here"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c1")


async def test_an_origin_not_allowed_closes_with_4403(socket, persistent):
    s = socket(f"/ws/widget/{persistent.widget_key}/", origin="https://evil.example.com")
    assert await s.connect()
    assert (await s.next())["code"] == "origin_not_allowed"
    assert await s.closed() == 4403


async def test_the_servers_own_host_is_an_allowed_origin(socket, persistent):
    await connect_customer(
        socket, persistent, customer_token(persistent.authentication_setting), origin="http://testserver"
    )


async def test_an_unknown_widget_closes_with_4403(socket):
    s = socket("/ws/widget/nope/")
    assert await s.connect()
    assert (await s.next())["code"] == "not_found"
    assert await s.closed() == 4403


async def test_live_customer_ends_the_conversation(socket, live, alice):
    token = await in_db(issue_visitor_token)(live)
    s, _ = await connect_customer(socket, live, token)
    await s.send({"type": "message.send", "client_id": "v1", "body": "Hi"})
    await s.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    await s.send({"type": "conversation.end"})
    ended = await s.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "wrap_up")
    assert ended["conversation"]["customer_can_end"] is False
    await s.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "ended_by_customer")
    await s.close()


async def test_persistent_customer_cannot_end_and_gets_an_error_frame(socket, persistent):
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    await s.send({"type": "message.send", "client_id": "c1", "body": "Hi"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c1")
    await s.send({"type": "conversation.end"})
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == "customer_cannot_end"
    await s.close()


def close_until_tomorrow(widget) -> None:
    """Operating hours that open only for a minute tomorrow, set on the widget (as in the admin)."""
    from datetime import time

    from django.utils import timezone

    from tests.factories import OperatingHoursFactory, OperatingIntervalFactory

    hours = OperatingHoursFactory(time_zone="UTC")
    weekday = (timezone.now().weekday() + 1) % 7
    OperatingIntervalFactory(hours=hours, weekday=weekday, opens_at=time(0, 0), closes_at=time(0, 1))
    widget.operating_hours = hours
    widget.save()


async def test_live_chat_outside_hours_is_refused_with_the_next_opening(socket, live):
    await in_db(close_until_tomorrow)(live)
    s, _ = await connect_customer(socket, live, await in_db(issue_visitor_token)(live))
    await s.send({"type": "message.send", "client_id": "v1", "body": "Hello?"})
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == "outside_operating_hours" and error["next_opening"]
    assert error["client_id"] == "v1"
    await s.close()


async def test_hours_set_in_the_admin_after_the_customer_connected_apply_to_their_next_conversation(socket, live):
    """The socket keeps the widget's ids, not its configuration: the full path reads it again."""
    s, _ = await connect_customer(socket, live, await in_db(issue_visitor_token)(live))
    await in_db(close_until_tomorrow)(live)
    await s.send({"type": "message.send", "client_id": "v1", "body": "Hello?"})
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == "outside_operating_hours" and error["client_id"] == "v1"
    await s.close()


async def test_a_widget_moved_to_another_workstream_answers_its_connected_customers_not_found(socket, live, queue):
    """Their socket listens to the old workstream's groups; they reconnect into the new one."""
    from tests.factories import WorkstreamFactory

    s, _ = await connect_customer(socket, live, await in_db(issue_visitor_token)(live))

    def move():
        live.workstream = WorkstreamFactory(name="Elsewhere", queue=queue)
        live.save()

    await in_db(move)()
    await s.send({"type": "message.send", "client_id": "m1", "body": "Hello?"})
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == "not_found" and error["client_id"] == "m1"
    assert not await in_db(Conversation.objects.exists)()
    await s.close()


async def test_a_customer_erased_while_connected_gets_not_found_and_the_socket_stays_open(socket, persistent):
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting, sub="gone"))
    await in_db(lambda: Customer.objects.filter(external_id="gone").delete())()
    await s.send({"type": "message.send", "client_id": "g1", "body": "Anyone?"})
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == "not_found" and error["client_id"] == "g1"
    await s.send({"type": "conversation.end"})
    assert (await s.until(lambda f: f["type"] == "error"))["code"] == "not_found"
    await s.close()


async def test_customer_sockets_record_connection_and_disconnection(socket, persistent):
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting, sub="p1"))
    customer = await in_db(Customer.objects.get)(external_id="p1")
    assert customer.connection_count == 1 and customer.disconnected_at is None
    await s.close()
    customer = await in_db(Customer.objects.get)(external_id="p1")
    assert customer.connection_count == 0 and customer.disconnected_at is not None


async def test_typing_reaches_the_agent_and_is_not_stored(socket, persistent, alice):
    from tests.factories import api_key

    token = await in_db(lambda: api_key(alice.user))()
    agent = socket("/ws/agent/", origin="http://testserver")
    assert await agent.connect()
    await agent.send({"type": "auth", "token": token})
    await agent.until(lambda f: f["type"] == "ready")
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    await s.send({"type": "message.send", "client_id": "c1", "body": "Hi"})
    await s.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    await s.send({"type": "typing"})
    typing = await agent.until(lambda f: f["type"] == "typing")
    assert typing == {"type": "typing", "conversation_id": typing["conversation_id"], "sender": "customer"}
    count = await in_db(Message.objects.count)()
    for _ in range(5):  # typing again within 2 s: not forwarded (at most one frame every 2 s)
        await s.send({"type": "typing"})
    assert not [f for f in await agent.drain(0.5) if f["type"] == "typing"]
    assert await in_db(Message.objects.count)() == count
    assert json.dumps(typing)
    await s.close()
    await agent.close()


async def test_an_idle_socket_outlives_the_channel_layers_blocking_read(socket, persistent, alice):
    """redis-py 8's default 5 s read timeout used to kill consumers idle for 5 s."""
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    await s.send({"type": "message.send", "client_id": "c1", "body": "Hi"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["kind"] == "agent_joined")
    await s.drain()
    assert await s.communicator.receive_nothing(7)
    conversation = await in_db(Conversation.objects.get)()
    await in_db(services.agent_message_send)(conversation_id=conversation.pk, agent=alice, body="Still there?")
    late = await s.until(lambda f: f["type"] == "message" and f["message"]["sender"] == "agent")
    assert late["message"]["body"] == "Still there?"
    await s.close()


@pytest.mark.postgres
async def test_a_message_waiting_for_a_row_lock_does_not_hold_up_other_customers(socket, persistent, alice):
    """Message frames run on several database threads per process (omnichannel/dbthreads.py):
    one customer's write that waits for its conversation's row lock leaves the others going."""
    setting = persistent.authentication_setting
    ann, _ = await connect_customer(socket, persistent, customer_token(setting, sub="ann"))
    ben, _ = await connect_customer(socket, persistent, customer_token(setting, sub="ben"))
    for s, name in ((ann, "ann"), (ben, "ben")):
        await s.send({"type": "message.send", "client_id": f"{name}-1", "body": "Hi"})
        await s.until(lambda f, name=name: f["type"] == "message" and f["message"]["client_id"] == f"{name}-1")
    anns = await in_db(Conversation.objects.get)(customer__external_id="ann")

    locked, release = threading.Event(), threading.Event()

    def hold_anns_row():
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=anns.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_anns_row)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        await ann.send({"type": "message.send", "client_id": "ann-2", "body": "Waits for the lock"})
        await asyncio.sleep(0.3)  # ann's frame is now blocked on the row lock
        await ben.send({"type": "message.send", "client_id": "ben-2", "body": "Goes through"})
        echo = await ben.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "ben-2", timeout=3)
        assert echo["message"]["seq"] > 0
        assert not any(f["type"] == "message" and f["message"]["client_id"] == "ann-2" for f in ann.frames), (
            "ann's message went through while her row was locked"
        )
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    await ann.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "ann-2", timeout=5)


@pytest.mark.fast_realtime
async def test_frames_and_group_events_do_not_hop_to_channels_sync_thread(socket, persistent, alice, monkeypatch):
    """Channels' dispatch awaits ``aclose_old_connections()`` (a round trip to its one sync
    thread) before every handler; the consumers reach the database only through calls that
    close stale connections themselves, so they skip it (docs/benchmark.md)."""
    import channels.consumer

    hops = []

    async def counted():
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    from tests.realtime.test_agent_socket import connect_agent

    agent, _ = await connect_agent(socket, alice)
    s, _ = await connect_customer(socket, persistent, customer_token(persistent.authentication_setting))
    await s.send({"type": "message.send", "client_id": "c-1", "body": "Hello"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c-1")
    active = await agent.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    conversation_id = active["conversation"]["id"]
    await agent.send({"type": "message.send", "conversation_id": conversation_id, "client_id": "a-1", "body": "Hi"})
    await s.until(lambda f: f["type"] == "message" and f["message"]["body"] == "Hi")
    await s.send({"type": "message.send", "client_id": "c-2", "body": "Thanks"})
    await agent.until(lambda f: f["type"] == "message" and f["message"]["body"] == "Thanks")
    await s.close()
    await agent.close()
    assert hops == []
