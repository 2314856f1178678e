"""The pre-chat form on the customer's socket (docs/protocol.md, "Pre-chat form"): the first
``message.send`` carries the answers; a bad one is an error frame naming its question, with the
``client_id``, on a socket that stays open; the good one starts the conversation."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as in_db

from conversations.customer_tokens import issue_visitor_token
from conversations.models import Conversation
from tests.realtime.test_widget_socket import connect_customer
from workstreams.models import PrechatField, PrechatFieldType

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_first_message_carries_the_answers_and_a_bad_one_is_named(socket, live):
    await in_db(PrechatField.objects.create)(workstream=live.workstream, name="name", label="Name", required=True)
    await in_db(PrechatField.objects.create)(
        workstream=live.workstream, name="email", label="Email", type=PrechatFieldType.EMAIL, required=True
    )
    token = await in_db(issue_visitor_token)(live)
    s, _ = await connect_customer(socket, live, token)
    await s.send({"type": "message.send", "client_id": "c1", "body": "Hi", "prechat": {"name": "Vera"}})
    error = await s.until(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("validation_error", "c1")
    assert set(error["fields"]) == {"email"}
    assert not await in_db(Conversation.objects.exists)()

    prechat = {"name": "Vera", "email": "vera@example.com"}
    await s.send({"type": "message.send", "client_id": "c1", "body": "Hi", "prechat": prechat})
    echo = await s.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c1")
    assert echo["message"]["author"] == "Vera"
    conversation = await in_db(Conversation.objects.get)()
    assert conversation.prechat == prechat
