"""An agent's inbox pages are counted by their sockets (docs/email.md, "Agents off the page"):
a session socket is an inbox open; an integration's token socket is not."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as in_db

from agents.models import Agent
from tests.cast import alice, queue  # noqa: F401 - fixtures
from tests.realtime.conftest import logged_in, session_socket
from tests.realtime.test_agent_socket import connect_agent

pytestmark = pytest.mark.django_db(transaction=True)


def inbox_of(agent) -> tuple[int, bool]:
    row = Agent.objects.get(pk=agent.pk)
    return row.inbox_connections, row.inbox_left_at is not None


async def test_a_session_socket_is_an_inbox_open_until_it_closes(socket, alice):
    client = await in_db(logged_in)(alice.user)
    first = await session_socket(socket, client)
    second = await session_socket(socket, client)
    assert await in_db(inbox_of)(alice) == (2, False)
    await first.close()
    assert await in_db(inbox_of)(alice) == (1, False)
    await second.close()
    assert await in_db(inbox_of)(alice) == (0, True)


async def test_a_token_socket_is_no_inbox(socket, alice):
    s, _ready = await connect_agent(socket, alice)
    assert await in_db(inbox_of)(alice) == (0, False)
    await s.close()
    assert await in_db(inbox_of)(alice) == (0, False)
