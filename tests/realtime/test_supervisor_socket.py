"""/ws/agent/ for supervisors and the inbox's live figures (docs/protocol.md, "Agent WebSocket")."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as in_db

from agents.models import Presence
from conversations import services
from conversations.customer_tokens import issue_visitor_token
from tests.factories import UserFactory, api_key
from tests.realtime.test_agent_socket import connect_agent, connect_customer

pytestmark = pytest.mark.django_db(transaction=True)


async def connect_supervisor(socket):
    def token():
        user = UserFactory(username="sam", is_staff=True)
        return api_key(user)

    s = socket("/ws/agent/", origin="http://testserver")
    assert await s.connect()
    await s.send({"type": "auth", "token": await in_db(token)()})
    ready = await s.until(lambda f: f["type"] == "ready")
    return s, ready


async def test_a_supervisor_without_an_agent_profile_follows_every_conversation_read_only(socket, alice, persistent):
    supervisor, ready = await connect_supervisor(socket)
    assert ready["agent"] is None
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})

    conversation = await supervisor.until(lambda f: f["type"] == "conversation")
    message = await supervisor.until(lambda f: f["type"] == "message" and f["message"]["body"] == "Hello")
    assert conversation["conversation"]["customer"]["name"]
    assert message["message"]["sender"] == "customer"

    await supervisor.send({"type": "message.send", "conversation_id": 1, "client_id": "x", "body": "Hi"})
    error = await supervisor.until(lambda f: f["type"] == "error")
    assert error["code"] == "forbidden"
    assert error["client_id"] == "x"
    await supervisor.close()
    await customer.close()


async def test_agents_hear_how_many_customers_wait_in_their_queues(socket, alice, live):
    await in_db(services.agent_presence_set)(agent=alice, presence=Presence.OFFLINE)
    agent, _ready = await connect_agent(socket, alice)
    customer = socket(f"/ws/widget/{live.widget_key}/")
    assert await customer.connect()
    token = await in_db(issue_visitor_token)(live)
    await customer.send({"type": "auth", "token": token, "after_seq": 0})
    await customer.until(lambda f: f["type"] == "ready")
    await customer.send({"type": "message.send", "client_id": "v1", "body": "Anyone?"})

    frame = await agent.until(lambda f: f["type"] == "queue")
    assert frame == {"type": "queue", "queue_id": live.workstream.queue_id, "waiting": 1}

    await in_db(services.agent_presence_set)(agent=alice, presence=Presence.AVAILABLE)  # takes it
    frame = await agent.until(lambda f: f["type"] == "queue" and f["waiting"] == 0)
    assert frame["queue_id"] == live.workstream.queue_id
    await agent.close()
    await customer.close()
