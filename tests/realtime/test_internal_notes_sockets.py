"""Internal notes on the sockets (docs/protocol.md, "Internal notes"): an agent's note is echoed
to agents and never reaches the customer's socket, live or on reconnect; the customer's seq
goes on without a gap; a customer's note is refused and the socket stays open."""

from __future__ import annotations

import pytest

from tests.realtime.conftest import customer_token, messages
from tests.realtime.test_agent_socket import connect_agent, connect_customer

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_note_reaches_agents_only_and_the_customers_seq_has_no_gap(socket, persistent, alice):
    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    assigned = await agent.until(lambda f: f["type"] == "notification")
    conversation_id = assigned["conversation_id"]
    await customer.until(lambda f: f["type"] == "conversation" and f["conversation"]["status"] == "active")
    customer_seqs = [m["seq"] for m in messages(customer.frames)]

    await agent.send(
        {"type": "message.send", "conversation_id": conversation_id, "client_id": "n1", "body": "VIP", "internal": True}
    )
    note = await agent.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "n1")
    assert note["message"]["internal"] is True
    await agent.send({"type": "message.send", "conversation_id": conversation_id, "client_id": "a1", "body": "Hi!"})
    answer = await agent.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "a1")
    assert answer["message"]["seq"] == note["message"]["seq"] + 1

    got = await customer.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "a1")
    assert got["message"]["seq"] == max(customer_seqs) + 1 and got["message"]["internal"] is False
    await customer.drain()
    assert "VIP" not in [m["body"] for m in messages(customer.frames)]

    # A reconnecting customer catches up by its own numbering, without the note.
    again = socket(f"/ws/widget/{persistent.widget_key}/")
    assert await again.connect()
    await again.send({"type": "auth", "token": customer_token(persistent.authentication_setting), "after_seq": 0})
    ready = await again.until(lambda f: f["type"] == "ready")
    assert [m["seq"] for m in ready["messages"]] == list(range(1, got["message"]["seq"] + 1))
    assert "VIP" not in [m["body"] for m in ready["messages"]]
    assert ready["conversation"]["last_seq"] == got["message"]["seq"]


async def test_a_customer_sending_a_note_gets_forbidden_and_keeps_its_socket(socket, persistent):
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Psst", "internal": True})
    error = await customer.until(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("forbidden", "c1")
    await customer.send({"type": "message.send", "client_id": "c2", "body": "Hello"})
    echo = await customer.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    assert echo["message"]["seq"] == 1


async def test_an_agents_internal_that_is_not_a_boolean_is_a_validation_error(socket, persistent, alice):
    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    conversation_id = (await agent.until(lambda f: f["type"] == "notification"))["conversation_id"]
    await agent.send(
        {"type": "message.send", "conversation_id": conversation_id, "client_id": "n1", "body": "x", "internal": "yes"}
    )
    error = await agent.until(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("validation_error", "n1")
