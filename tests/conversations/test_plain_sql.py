"""The statements written out once (omnichannel/rows.py and their users: the message path in
conversations/services/sql.py, the message page, the API token) read and write exactly what the
ORM would, on either database."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from agents.models import ApiToken
from conversations import services
from conversations.models import Conversation, Message
from conversations.selectors import is_agents_conversation, message_page
from conversations.services import sql
from omnichannel.api_auth import token_with_user
from tests.factories import CustomerFactory


def field_values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_the_locked_row_holds_the_same_values_as_the_orms(persistent, customer, alice):
    result = services.customer_message_send(widget=persistent, customer=customer, body="Hello", client_id="c-1")
    conversation = result.conversation
    Conversation.objects.filter(pk=conversation.pk).update(
        waiting_since=timezone.now() - timedelta(hours=3), offline_notified=True, agent=alice
    )
    with transaction.atomic():
        row = sql._lock_row("id = %s", [conversation.pk])
    expected = Conversation.objects.get(pk=conversation.pk)
    assert field_values(row) == field_values(expected)
    assert row._state.adding is False and row._state.db == "default"
    assert row.waiting_since.tzinfo is not None


def test_no_row_is_none(db):
    with transaction.atomic():
        assert sql._lock_row("id = %s", [123456]) is None


def test_an_inserted_message_reads_back_as_written(persistent, customer):
    result = services.customer_message_send(widget=persistent, customer=customer, body="  Hi  ", client_id="c-9")
    message = result.message
    assert message.pk is not None and message._state.adding is False
    assert field_values(Message.objects.get(pk=message.pk)) == field_values(message)
    assert (message.body, message.client_id, message.seq) == ("Hi", "c-9", 1)


def test_a_page_of_messages_holds_the_orms_rows_in_each_direction(persistent, customer, alice):
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="1").conversation
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    for n in range(2, 8):
        services.customer_message_send(widget=persistent, customer=customer, body=str(n))
    messages = Message.objects.filter(conversation=conversation).order_by("seq")
    assert messages.count() == 8  # seven customer messages and "Alice joined"
    latest, more = message_page(conversation.pk, limit=3)
    assert [field_values(m) for m in latest] == [field_values(m) for m in messages[5:8]] and more
    older, more = message_page(conversation.pk, before_seq=latest[0].seq, limit=3)
    assert [field_values(m) for m in older] == [field_values(m) for m in messages[2:5]] and more
    oldest, more = message_page(conversation.pk, before_seq=older[0].seq, limit=3)
    assert [m.seq for m in oldest] == [1, 2] and not more
    after, more = message_page(conversation.pk, after_seq=2, limit=4)
    assert [field_values(m) for m in after] == [field_values(m) for m in messages[2:6]] and more
    assert message_page(conversation.pk, after_seq=8) == ([], False)
    assert all(m._state.adding is False and m.created_at.tzinfo is not None for m in latest)


def test_a_token_reads_back_with_its_user_as_the_orm_loads_them(alice):
    issued, key = ApiToken.objects.issue(user=alice.user)
    token = token_with_user(key)
    expected = ApiToken.objects.select_related("user").get(pk=issued.pk)
    assert field_values(token) == field_values(expected)
    assert field_values(token.user) == field_values(expected.user)
    assert token.user._state.adding is False and token.created.tzinfo is not None


def test_an_unknown_key_has_no_token(alice):
    _token, key = ApiToken.objects.issue(user=alice.user)
    assert token_with_user(key[:-1]) is None
    assert token_with_user("f" * 40) is None
    assert token_with_user("nul\x00") is None
    assert token_with_user("\ud800") is None


def test_the_agents_own_conversation_is_told_apart_from_others(persistent, customer, other_customer, alice, bob):
    mine = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.conversation_assign(conversation_id=mine.pk, agent=alice)
    queued = services.customer_message_send(widget=persistent, customer=other_customer, body="Hi").conversation
    assert is_agents_conversation(mine.pk, alice.user_id)
    assert not is_agents_conversation(mine.pk, bob.user_id)
    assert not is_agents_conversation(queued.pk, alice.user_id)
    assert not is_agents_conversation(123456, alice.user_id)


def test_an_assignment_writes_every_field_it_changed(live, alice, bob):
    """An assignment writes the fields it changes (services.assignment._ASSIGNED_FIELDS), not the whole
    row: what the service holds in memory afterwards is what the database holds."""
    customer = CustomerFactory(authentication_setting=None, widget=live)
    conversation = services.customer_message_send(widget=live, customer=customer, body="Hi").conversation
    first = services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    assert field_values(Conversation.objects.get(pk=conversation.pk)) == field_values(first)
    services.conversation_wait(conversation_id=conversation.pk, agent=alice)  # live: back to the queue
    again = services.conversation_assign(conversation_id=conversation.pk, agent=bob)
    stored = Conversation.objects.get(pk=conversation.pk)
    assert field_values(stored) == field_values(again)
    assert (stored.agent_id, stored.first_assigned_at, stored.last_seq) == (bob.pk, first.first_assigned_at, 3)
