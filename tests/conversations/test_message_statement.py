"""A socket's message is first offered to the engine's executor on the event loop's own connection
(``services.acustomer_message_append``, ``services.aagent_message_append``, omnichannel.asyncdb),
which applies the full path's rule (``_only_appends``): it writes what the full path writes when
the message only appends, and leaves every other case to the full path. PostgreSQL only."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone

from conversations import events, realtime, services
from conversations.errors import NotFound
from conversations.models import Conversation, Message, Status
from omnichannel import asyncdb
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MESSAGE_FIELDS = ("seq", "sender", "agent_id", "author", "kind", "body", "client_id")


@pytest.fixture
def full_path(monkeypatch):
    """The full (thread) path's calls, counted; the services themselves run unchanged."""
    calls = []
    for name in ("customer_message_send", "agent_message_send"):
        real = getattr(services, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(services, name, spy)
    return calls


def active_conversation(widget, customer, agent) -> Conversation:
    """The customer's conversation, active with ``agent`` (the eager drain assigns it)."""
    conversation = services.customer_message_send(widget=widget, customer=customer, body="Hello").conversation
    conversation.refresh_from_db()
    if conversation.status != Status.ACTIVE:
        services.conversation_assign(conversation_id=conversation.pk, agent=agent)
        conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, agent.pk)
    return conversation


@pytest.fixture
def two_active(persistent, alice):
    """Two customers, each in an active conversation with Alice. The ids of customers and
    workstreams differ, so a frame sent to the wrong group shows."""
    CustomerFactory.create_batch(3, authentication_setting=persistent.authentication_setting)
    customers = CustomerFactory.create_batch(
        2, authentication_setting=persistent.authentication_setting, display_name="Carol"
    )
    assert {c.pk for c in customers}.isdisjoint({persistent.workstream_id})
    return [(customer, active_conversation(persistent, customer, alice)) for customer in customers]


@sync_to_async
def rows(conversation_id: int):
    conversation = Conversation.objects.get(pk=conversation_id)
    messages = list(Message.objects.filter(conversation_id=conversation_id).order_by("seq"))
    return conversation, messages


def message_values(message: Message) -> dict:
    return {name: getattr(message, name) for name in MESSAGE_FIELDS}


async def test_a_customer_message_into_an_active_conversation_takes_no_thread_and_writes_what_the_full_path_writes(
    persistent, two_active, full_path, settings
):
    (carol, fast), (dave, full) = two_active
    result = await realtime.acustomer_message_send(widget=persistent, customer=carol, body=" Hi ", client_id="c-2")
    assert full_path == []
    settings.FAST_PATH_CONNECTIONS = 0
    await realtime.acustomer_message_send(widget=persistent, customer=dave, body=" Hi ", client_id="c-2")
    assert full_path == ["customer_message_send"]

    (fast_row, fast_messages), (full_row, full_messages) = await rows(fast.pk), await rows(full.pk)
    assert [message_values(m) for m in fast_messages] == [message_values(m) for m in full_messages]
    assert message_values(result.message) == message_values(fast_messages[-1])
    assert result.message.pk == fast_messages[-1].pk and result.created
    assert (result.conversation.pk, result.conversation.agent_id) == (fast.pk, fast.agent_id)
    for name in ("status", "last_seq", "agent_read_seq", "offline_notified", "returned_at", "waiting_since"):
        assert getattr(fast_row, name) == getattr(full_row, name), name
    assert fast_row.last_customer_message_at == fast_row.last_activity_at == result.message.created_at
    assert fast_row.last_customer_message_at > fast.last_customer_message_at


async def test_an_agent_message_into_an_active_conversation_takes_no_thread_and_writes_what_the_full_path_writes(
    two_active, alice, full_path, settings
):
    (_carol, fast), (_dave, full) = two_active
    result = await realtime.aagent_message_send(conversation_id=fast.pk, agent=alice, body="Hello!", client_id="a-1")
    assert full_path == []
    settings.FAST_PATH_CONNECTIONS = 0
    await realtime.aagent_message_send(conversation_id=full.pk, agent=alice, body="Hello!", client_id="a-1")
    assert full_path == ["agent_message_send"]

    (fast_row, fast_messages), (full_row, full_messages) = await rows(fast.pk), await rows(full.pk)
    assert [message_values(m) for m in fast_messages] == [message_values(m) for m in full_messages]
    assert message_values(result.message) == message_values(fast_messages[-1])
    assert result.message.agent_id == alice.pk and result.message.author == "Alice"
    for name in ("status", "last_seq", "agent_read_seq", "returned_at", "offline_notified"):
        assert getattr(fast_row, name) == getattr(full_row, name), name
    assert fast_row.agent_read_seq == fast_row.last_seq
    assert fast_row.last_customer_message_at == fast.last_customer_message_at
    assert fast_row.last_agent_message_at == fast_row.last_activity_at == result.message.created_at


async def test_the_message_frame_reaches_the_customer_the_agent_and_the_supervisors(two_active, alice):
    (carol, conversation), _other = two_active
    layer = get_channel_layer()
    groups = [f"customer.{carol.pk}.{conversation.workstream_id}", f"agent.{alice.pk}", "supervisors"]
    channels = []
    for group in groups:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        channels.append(channel)
    await asyncio.sleep(0.1)  # the subscriptions are in place
    result = await realtime.aagent_message_send(conversation_id=conversation.pk, agent=alice, body="Hi", client_id="x")
    for channel in channels:
        event = await asyncio.wait_for(layer.receive(channel), 5)
        assert event["frame"] == {"type": "message", "message": events.message_object(result.message)}
    assert event["frame"]["message"]["conversation_id"] == conversation.pk
    assert event["frame"]["message"]["seq"] == result.message.seq


async def test_a_client_id_sent_again_returns_the_stored_message(persistent, two_active, alice, full_path):
    (carol, conversation), _other = two_active
    first = await realtime.acustomer_message_send(widget=persistent, customer=carol, body="One", client_id="c-9")
    again = await realtime.acustomer_message_send(widget=persistent, customer=carol, body="One", client_id="c-9")
    assert (again.created, again.message.pk, again.message.seq) == (False, first.message.pk, first.message.seq)
    reply = await realtime.aagent_message_send(conversation_id=conversation.pk, agent=alice, body="Two", client_id="a")
    reply_again = await realtime.aagent_message_send(
        conversation_id=conversation.pk, agent=alice, body="Two", client_id="a"
    )
    assert (reply_again.created, reply_again.message.pk) == (False, reply.message.pk)
    assert full_path == ["customer_message_send", "agent_message_send"]
    row, messages = await rows(conversation.pk)
    assert [m.seq for m in messages] == list(range(1, row.last_seq + 1))


async def test_the_same_client_id_at_the_same_moment_is_written_once(persistent, two_active):
    (carol, conversation), _other = two_active
    results = await asyncio.gather(
        *(
            realtime.acustomer_message_send(widget=persistent, customer=carol, body="Once", client_id="same")
            for _ in range(6)
        )
    )
    assert sorted(result.created for result in results) == [False] * 5 + [True]
    assert len({result.message.pk for result in results}) == 1
    row, messages = await rows(conversation.pk)
    assert [m.client_id for m in messages].count("same") == 1
    assert [m.seq for m in messages] == list(range(1, row.last_seq + 1))


async def test_messages_from_both_sides_at_once_get_every_seq_exactly_once(persistent, two_active, alice, settings):
    (carol, conversation), _other = two_active
    settings.FAST_PATH_CONNECTIONS = 3  # fewer connections than messages: they queue for one
    sends = []
    for n in range(15):
        sends.append(
            realtime.acustomer_message_send(widget=persistent, customer=carol, body=f"c{n}", client_id=f"c{n}")
        )
        sends.append(
            realtime.aagent_message_send(conversation_id=conversation.pk, agent=alice, body=f"a{n}", client_id=f"a{n}")
        )
    # One send in five through the full path, racing the statements for the same row lock.
    sends.extend(
        sync_to_async(services.agent_message_send, thread_sensitive=False)(
            conversation_id=conversation.pk, agent=alice, body=f"t{n}", client_id=f"t{n}"
        )
        for n in range(6)
    )
    results = await asyncio.gather(*sends)
    row, messages = await rows(conversation.pk)
    assert all(result.created for result in results)
    assert [m.seq for m in messages] == list(range(1, row.last_seq + 1))
    assert sorted(result.message.seq for result in results) == [m.seq for m in messages][-36:]
    assert {m.client_id for m in messages} >= {f"{side}{n}" for side in "ca" for n in range(15)}


async def test_a_waiting_conversation_takes_the_full_path_and_resumes(two_active, alice, full_path):
    (_carol, conversation), _other = two_active
    await sync_to_async(services.conversation_wait)(conversation_id=conversation.pk, agent=alice)
    result = await realtime.aagent_message_send(
        conversation_id=conversation.pk, agent=alice, body="Back", client_id="b"
    )
    assert full_path == ["agent_message_send"]
    row, _messages = await rows(conversation.pk)
    assert row.status == Status.ACTIVE and row.waiting_since is None
    assert result.message.seq == row.last_seq


async def test_a_returning_customer_waiting_for_an_answer_takes_the_full_path(two_active, alice, full_path):
    (_carol, conversation), _other = two_active
    await sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(returned_at=timezone.now())
    await realtime.aagent_message_send(conversation_id=conversation.pk, agent=alice, body="Hi", client_id="r")
    assert full_path == ["agent_message_send"]
    row, _messages = await rows(conversation.pk)
    assert row.returned_at is None


async def test_a_customer_without_an_active_conversation_takes_the_full_path(persistent, customer, full_path):
    result = await realtime.acustomer_message_send(widget=persistent, customer=customer, body="New", client_id="n")
    assert full_path == ["customer_message_send"]
    assert result.created and result.message.seq >= 1
    row, messages = await rows(result.conversation.pk)
    assert messages[0].body == "New" and row.status in (Status.OPEN, Status.ACTIVE)


async def test_another_agents_or_no_conversation_is_not_found(two_active, bob, full_path):
    (_carol, conversation), _other = two_active
    for conversation_id in (conversation.pk, 2**63, 0, -1):
        with pytest.raises(NotFound):
            await realtime.aagent_message_send(conversation_id=conversation_id, agent=bob, body="No", client_id="z")
    assert full_path == ["agent_message_send"] * 4
    _row, messages = await rows(conversation.pk)
    assert [m.body for m in messages if m.client_id == "z"] == []


async def test_a_connection_the_database_dropped_costs_no_message(persistent, two_active, full_path):
    (carol, conversation), _other = two_active
    await realtime.acustomer_message_send(widget=persistent, customer=carol, body="One", client_id="k1")
    assert full_path == []

    @sync_to_async
    def terminate_other_backends():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                [asyncdb.APPLICATION_NAME],
            )
            return len(cursor.fetchall())

    assert await terminate_other_backends() >= 1
    second = await realtime.acustomer_message_send(widget=persistent, customer=carol, body="Two", client_id="k2")
    assert full_path == ["customer_message_send"]  # the statement failed; the full path wrote it
    third = await realtime.acustomer_message_send(widget=persistent, customer=carol, body="Three", client_id="k3")
    assert full_path == ["customer_message_send"]  # a fresh connection took over
    row, messages = await rows(conversation.pk)
    assert [m.body for m in messages][-3:] == ["One", "Two", "Three"]
    assert (second.message.seq, third.message.seq) == (row.last_seq - 1, row.last_seq)


async def test_the_loop_executor_reads_the_row_after_a_concurrent_change(persistent, two_active, alice, full_path):
    """While the executor waits for the row lock, the conversation is put on hold; it reads the
    new row, and the rule leaves the message to the full path: nothing is written."""
    (carol, conversation), _other = two_active
    started = timezone.now()

    @sync_to_async(thread_sensitive=False)
    def hold_and_wait():
        from django.db import transaction

        with transaction.atomic():
            Conversation.objects.select_for_update().get(pk=conversation.pk)
            import time

            time.sleep(0.5)
            Conversation.objects.filter(pk=conversation.pk).update(status=Status.WAITING, waiting_since=started)

    holder = asyncio.ensure_future(hold_and_wait())
    await asyncio.sleep(0.2)
    result = await services.acustomer_message_append(
        widget_id=persistent.pk,
        workstream_id=persistent.workstream_id,
        customer_id=carol.pk,
        body="Late",
        client_id="late",
    )
    await holder
    assert result is None
    assert timezone.now() - started >= timedelta(seconds=0.5)
    row, messages = await rows(conversation.pk)
    assert row.status == Status.WAITING and "Late" not in [m.body for m in messages]


async def test_a_connection_not_made_in_time_costs_no_message(persistent, two_active, full_path, monkeypatch):
    (carol, conversation), _other = two_active
    monkeypatch.setattr(asyncdb, "ACQUIRE_TIMEOUT", 1e-6)  # no new connection is made that fast
    result = await realtime.acustomer_message_send(widget=persistent, customer=carol, body="Slow", client_id="s")
    assert full_path == ["customer_message_send"]
    row, messages = await rows(conversation.pk)
    assert messages[-1].body == "Slow" and result.message.seq == row.last_seq
