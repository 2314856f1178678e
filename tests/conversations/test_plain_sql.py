"""The message path's plain SQL (conversations/services.py) reads and writes exactly what the
ORM would, on either database."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Message


def field_values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_the_locked_row_holds_the_same_values_as_the_orms(persistent, customer, alice):
    result = services.customer_message_send(widget=persistent, customer=customer, body="Hello", client_id="c-1")
    conversation = result.conversation
    Conversation.objects.filter(pk=conversation.pk).update(
        waiting_since=timezone.now() - timedelta(hours=3), offline_notified=True, agent=alice
    )
    with transaction.atomic():
        row = services._lock_row("id = %s", [conversation.pk])
    expected = Conversation.objects.get(pk=conversation.pk)
    assert field_values(row) == field_values(expected)
    assert row._state.adding is False and row._state.db == "default"
    assert row.waiting_since.tzinfo is not None


def test_no_row_is_none(db):
    with transaction.atomic():
        assert services._lock_row("id = %s", [123456]) is None


def test_an_inserted_message_reads_back_as_written(persistent, customer):
    result = services.customer_message_send(widget=persistent, customer=customer, body="  Hi  ", client_id="c-9")
    message = result.message
    assert message.pk is not None and message._state.adding is False
    assert field_values(Message.objects.get(pk=message.pk)) == field_values(message)
    assert (message.body, message.client_id, message.seq) == ("Hi", "c-9", 1)
