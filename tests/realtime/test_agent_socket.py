"""The agent's socket, /ws/agent/ (docs/protocol.md)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as in_db

from agents.consumers import AgentConsumer
from agents.models import ApiToken, Presence
from conversations import services
from conversations.models import Conversation
from tests.factories import api_key
from tests.realtime.conftest import customer_token, logged_in, session_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def token_of(agent) -> str:
    return await in_db(lambda: api_key(agent.user))()


async def connect_agent(socket, agent):
    s = socket("/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send({"type": "auth", "token": await token_of(agent)})
    ready = await s.until(lambda f: f["type"] == "ready")
    return s, ready


async def connect_customer(socket, widget, sub="carol"):
    s = socket(f"/ws/widget/{widget.widget_key}/")
    assert await s.connect()
    await s.send({"type": "auth", "token": customer_token(widget.authentication_setting, sub=sub), "after_seq": 0})
    await s.until(lambda f: f["type"] == "ready")
    return s


async def test_token_auth_gives_ready_with_the_agent(socket, alice):
    s, ready = await connect_agent(socket, alice)
    assert ready["agent"] == {
        "id": alice.pk,
        "name": "Alice",
        "presence": "available",
        "capacity": {"total": 100, "used": 0, "available": 100},
    }
    await s.close()


async def test_session_auth_needs_no_auth_frame(socket, alice):
    s = await session_socket(socket, await in_db(logged_in)(alice.user))
    await s.close()


async def test_a_bad_token_closes_with_4401(socket, alice):
    s = socket("/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send({"type": "auth", "token": "not-a-token"})
    assert (await s.next())["code"] == "invalid_token"
    assert await s.closed() == 4401


async def test_a_token_of_a_user_who_is_neither_agent_nor_staff_is_refused(socket, db):
    from tests.factories import UserFactory

    key = await in_db(lambda: api_key(UserFactory(username="mallory")))()
    s = socket("/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send({"type": "auth", "token": key})
    assert (await s.next())["code"] == "invalid_token"
    assert await s.closed() == 4401


@pytest.mark.parametrize("origin", ["https://shop.example.com", None])
async def test_the_agent_socket_accepts_only_this_servers_origin(socket, alice, origin):
    s = socket("/ws/agent/", origin=origin)
    assert not await s.connect()


async def test_agent_and_customer_talk_both_ways(socket, persistent, alice):
    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    assigned = await agent.until(lambda f: f["type"] == "notification")
    assert assigned["kind"] == "assigned"
    conversation_id = assigned["conversation_id"]
    mine = await agent.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    # Sent before the assignment: the agent fetches the backlog (seq 1..last_seq) by REST.
    assert mine["conversation"]["last_seq"] == 2
    await customer.send({"type": "message.send", "client_id": "c2", "body": "Are you there?"})
    hello = await agent.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    assert hello["message"]["body"] == "Are you there?" and hello["message"]["seq"] == 3

    await agent.send({"type": "message.send", "conversation_id": conversation_id, "client_id": "a1", "body": "Hi!"})
    ack = await agent.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "a1")
    assert ack["message"]["sender"] == "agent" and ack["message"]["author"] == "Alice"
    got = await customer.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "a1")
    assert got["message"]["body"] == "Hi!"

    await agent.send({"type": "typing", "conversation_id": conversation_id})
    typing = await customer.until(lambda f: f["type"] == "typing")
    assert typing == {"type": "typing", "conversation_id": conversation_id, "sender": "agent"}
    await customer.close()
    await agent.close()


async def test_an_agent_cannot_write_into_someone_elses_conversation(socket, persistent, alice, bob):
    await in_db(services.agent_presence_set)(agent=bob, presence=Presence.OFFLINE)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    await customer.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    conversation = await in_db(Conversation.objects.get)()
    intruder, _ = await connect_agent(socket, bob)
    for frame in (
        {"type": "message.send", "conversation_id": conversation.pk, "client_id": "b1", "body": "psst"},
        {"type": "typing", "conversation_id": conversation.pk},
    ):
        await intruder.send(frame)
        assert (await intruder.until(lambda f: f["type"] == "error"))["code"] == "not_found"
    await intruder.send({"type": "message.send", "conversation_id": "7", "client_id": "b1", "body": "x"})
    assert (await intruder.until(lambda f: f["type"] == "error"))["code"] == "bad_frame"
    await customer.close()
    await intruder.close()


async def test_the_agent_is_notified_when_a_waiting_customer_returns(socket, persistent, alice):
    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    assigned = await agent.until(lambda f: f["type"] == "notification" and f["kind"] == "assigned")
    await in_db(services.conversation_wait)(conversation_id=assigned["conversation_id"], agent=alice)
    await customer.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "waiting")
    await customer.send({"type": "message.send", "client_id": "c2", "body": "Back!"})
    returned = await agent.until(lambda f: f["type"] == "notification" and f["kind"] == "customer_returned")
    assert returned["conversation_id"] == assigned["conversation_id"]
    await customer.close()
    await agent.close()


async def test_presence_and_capacity_changes_reach_the_agent(socket, persistent, alice):
    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    update = await agent.until(lambda f: f["type"] == "agent" and f["agent"]["capacity"]["used"] == 50)
    assert update["agent"]["presence"] == "busy"
    await customer.close()
    await agent.close()


async def test_supervisors_see_every_conversation(socket, persistent, alice, superuser):
    from agents.models import Agent

    supervisor_agent = await in_db(Agent.objects.create)(user=superuser, presence=Presence.OFFLINE)
    supervisor, _ = await connect_agent(socket, supervisor_agent)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    seen = await supervisor.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c1")
    assert seen["message"]["body"] == "Hello"
    await customer.close()
    await supervisor.close()


async def test_an_agent_whose_socket_drops_loses_nothing(socket, persistent, alice):
    from rest_framework.test import APIClient

    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    assigned = await agent.until(lambda f: f["type"] == "notification" and f["kind"] == "assigned")
    conversation_id = assigned["conversation_id"]
    seen = (await agent.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active"))[
        "conversation"
    ]["last_seq"]
    await agent.close()

    await customer.send({"type": "message.send", "client_id": "c2", "body": "While you were away"})
    await customer.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    conversation = await in_db(Conversation.objects.get)(pk=conversation_id)
    assert (conversation.status, conversation.agent_id) == ("active", alice.pk)  # still the agent's

    again, ready = await connect_agent(socket, alice)
    assert ready["agent"]["presence"] == "busy" and ready["agent"]["capacity"]["used"] == 50

    def missed():
        client = APIClient()
        client.force_authenticate(alice.user)
        url = f"/api/v1/agent/conversations/{conversation_id}/messages/"
        return client.get(url, {"after_seq": seen}).json()["messages"]

    assert [m["body"] for m in await in_db(missed)()] == ["While you were away"]
    await customer.send({"type": "message.send", "client_id": "c3", "body": "And now?"})
    live = await again.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c3")
    assert live["message"]["seq"] == seen + 2
    await customer.close()
    await again.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "message.send", "client_id": "a1"}, "bad_frame"),
        ({"type": "message.send", "client_id": "a1", "body": "hi"}, "bad_frame"),
        ({"type": "message.send", "conversation_id": True, "client_id": "a1", "body": "hi"}, "bad_frame"),
        ({"type": "message.send", "conversation_id": 10**30, "client_id": "a1", "body": "hi"}, "not_found"),
        ({"type": "message.send", "conversation_id": 1, "client_id": "a1", "body": "a\u0000b"}, "validation_error"),
        ({"type": "typing"}, "bad_frame"),
        ({"type": "conversation.end", "conversation_id": 1}, "bad_frame"),
        ("{", "bad_frame"),
    ],
)
async def test_bad_agent_frames_get_an_error_and_the_socket_stays_open(socket, alice, frame, code):
    s, _ = await connect_agent(socket, alice)
    await s.send(frame)
    error = await s.until(lambda f: f["type"] == "error")
    assert error["code"] == code and error["detail"]
    await s.send({"type": "typing", "conversation_id": 10**30})
    assert (await s.until(lambda f: f["type"] == "error"))["code"] == "not_found"  # still answering
    await s.close()


async def test_the_agent_socket_knows_the_token_it_authenticated_with(socket, alice, monkeypatch):
    token, key = await in_db(ApiToken.objects.issue)(user=alice.user)
    seen = []
    ready = AgentConsumer._ready

    async def spy(self, agent, is_staff):
        seen.append(self.api_token_id)
        await ready(self, agent, is_staff)

    monkeypatch.setattr(AgentConsumer, "_ready", spy)
    s = socket("/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send({"type": "auth", "token": key})
    assert (await s.next())["type"] == "ready"
    assert seen == [token.pk]
    await s.close()
