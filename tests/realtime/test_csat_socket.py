"""The satisfaction survey's question on the customer's socket (docs/protocol.md,
"Satisfaction survey (CSAT)"): after the agent closes a persistent conversation, every socket of
its customer gets ``csat.request`` once."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as in_db

from conversations import services
from tests.realtime.test_agent_socket import connect_agent, connect_customer

pytestmark = pytest.mark.django_db(transaction=True)


async def test_closing_asks_the_customers_sockets_once(socket, persistent, alice):
    persistent.workstream.csat_enabled = True
    await in_db(persistent.workstream.save)()
    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    other_tab = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    conversation_id = (await agent.until(lambda f: f["type"] == "notification"))["conversation_id"]
    await in_db(services.conversation_end)(conversation_id=conversation_id, agent=alice)
    await in_db(services.conversation_close)(conversation_id=conversation_id, agent=alice)
    for tab in (customer, other_tab):
        frame = await tab.until(lambda f: f["type"] == "csat.request")
        assert frame == {"type": "csat.request", "conversation_id": conversation_id}
        await tab.drain()
        assert [f["type"] for f in tab.frames].count("csat.request") == 1
