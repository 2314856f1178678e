"""Attachments on the sockets (docs/protocol.md, "Attachments"): ``message.send`` carries upload
ids (the body may then be empty), every message object carries ``attachments``, and an id that
is not the sender's is ``not_found`` on a socket that stays open."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations import services
from conversations.models import Customer
from tests import files
from tests.realtime.test_agent_socket import connect_agent, connect_customer

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def customer_upload(widget, sub, content, name):
    customer = Customer.objects.get(external_id=sub)
    upload = SimpleUploadedFile(name, content)
    return str(services.customer_attachment_upload(widget=widget, customer=customer, upload=upload).pk)


@database_sync_to_async
def agent_upload(conversation_id, agent, content, name):
    upload = SimpleUploadedFile(name, content)
    return str(services.agent_attachment_upload(conversation_id=conversation_id, agent=agent, upload=upload).pk)


async def test_a_customers_file_without_text_reaches_the_agent_and_back(socket, persistent, alice):
    agent, _ = await connect_agent(socket, alice)
    customer = await connect_customer(socket, persistent)
    await customer.send({"type": "message.send", "client_id": "c1", "body": "Hello"})
    conversation_id = (await agent.until(lambda f: f["type"] == "notification"))["conversation_id"]
    echo = await customer.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c1")
    assert echo["message"]["attachments"] == []

    attachment_id = await customer_upload(persistent, "carol", files.png(), "photo.png")
    await customer.send({"type": "message.send", "client_id": "c2", "attachments": [attachment_id]})
    echo = await customer.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    assert echo["message"]["body"] == ""
    [sent] = echo["message"]["attachments"]
    assert (sent["id"], sent["name"], sent["content_type"]) == (attachment_id, "photo.png", "image/png")
    assert sent["url"].startswith("/files/")
    got = await agent.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    assert [a["id"] for a in got["message"]["attachments"]] == [attachment_id]

    answer_id = await agent_upload(conversation_id, alice, files.PDF, "label.pdf")
    await agent.send(
        {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_id": "a1",
            "body": "Your return label",
            "attachments": [answer_id],
        }
    )
    got = await customer.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "a1")
    assert got["message"]["body"] == "Your return label"
    assert [(a["id"], a["content_type"]) for a in got["message"]["attachments"]] == [(answer_id, "application/pdf")]


async def test_someone_elses_attachment_is_not_found_and_the_socket_stays_open(socket, persistent):
    dave = await connect_customer(socket, persistent, sub="dave")
    await dave.send({"type": "message.send", "client_id": "d1", "body": "Hi"})
    await dave.until(lambda f: f["type"] == "message")
    theirs = await customer_upload(persistent, "dave", files.PDF, "dave.pdf")
    carol = await connect_customer(socket, persistent)
    await carol.send({"type": "message.send", "client_id": "c1", "body": "", "attachments": [theirs]})
    error = await carol.until(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("not_found", "c1")
    await carol.send({"type": "message.send", "client_id": "c2", "body": "Hello"})
    echo = await carol.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "c2")
    assert echo["message"]["seq"] == 1


async def test_a_message_without_body_or_attachments_is_still_a_bad_frame(socket, persistent):
    carol = await connect_customer(socket, persistent)
    await carol.send({"type": "message.send", "client_id": "c1", "attachments": []})
    error = await carol.until(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("bad_frame", "c1")
