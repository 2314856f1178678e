"""Internal notes (docs/protocol.md, "Internal notes"): an agent's note reaches agent-side clients
only, never the customer's socket, REST, transcript or email; the agents' ``seq`` numbers every
message, the customer's numbers what the customer sees, both without gaps."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.models import Presence
from agents.selectors import transcript_text
from conversations import events, services
from conversations.errors import DomainError, Forbidden, InvalidTransition, NotFound, ValidationFailed
from conversations.models import Conversation, Message, Status
from conversations.selectors import customer_visible_messages, message_page
from tests.factories import (
    AgentFactory,
    AuthenticationSettingFactory,
    ChatWidgetFactory,
    CustomerFactory,
    QueueFactory,
    WorkstreamFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(persistent, customer, alice):
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hello").conversation
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, alice.pk)
    return conversation


def note(conversation, agent, body="Customer is a VIP"):
    return services.agent_message_send(conversation_id=conversation.pk, agent=agent, body=body, internal=True).message


def test_a_note_takes_the_agents_next_seq_but_no_customer_seq(conversation, alice):
    before = Conversation.objects.get(pk=conversation.pk)
    message = note(conversation, alice)
    after = Conversation.objects.get(pk=conversation.pk)
    assert message.internal and message.customer_seq is None and message.seq == before.last_seq + 1
    assert (after.last_seq, after.customer_last_seq) == (before.last_seq + 1, before.customer_last_seq)
    answer = services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Hi").message
    assert (answer.seq, answer.customer_seq) == (before.last_seq + 2, before.customer_last_seq + 1)
    assert not answer.internal


def test_a_note_is_published_to_agents_and_supervisors_only(conversation, alice, customer, broadcasts, commit):
    with commit():
        message = note(conversation, alice)
    groups = {group for group, frame in broadcasts if frame["type"] == "message"}
    assert groups == {events.agent_group(alice.pk), events.SUPERVISORS_GROUP}
    [frame] = {id(f): f for _, f in broadcasts if f["type"] == "message"}.values()
    assert frame["message"]["internal"] is True and frame["message"]["seq"] == message.seq


def test_after_a_note_the_customer_and_the_agents_get_each_their_own_numbering(
    conversation, alice, customer, broadcasts, commit
):
    note(conversation, alice)
    with commit():
        answer = services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Hi").message
    by_group = {group: frame["message"] for group, frame in broadcasts if frame["type"] == "message"}
    customer_group = events.customer_group(customer.pk, conversation.workstream_id)
    assert by_group[customer_group]["seq"] == answer.customer_seq
    assert by_group[events.agent_group(alice.pk)]["seq"] == answer.seq == answer.customer_seq + 1
    assert by_group[customer_group]["internal"] is False


def test_a_note_does_not_answer_the_customer_nor_resume_a_waiting_conversation(conversation, alice):
    services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    before = Conversation.objects.get(pk=conversation.pk)
    note(conversation, alice)
    after = Conversation.objects.get(pk=conversation.pk)
    assert after.status == Status.WAITING
    assert after.last_agent_message_at == before.last_agent_message_at
    assert after.last_activity_at == before.last_activity_at


def test_a_note_may_be_left_in_wrap_up_but_not_after_the_close(conversation, alice):
    services.conversation_end(conversation_id=conversation.pk, agent=alice)
    assert note(conversation, alice, "Refund promised").internal
    services.conversation_close(conversation_id=conversation.pk, agent=alice)
    with pytest.raises(InvalidTransition):
        note(conversation, alice, "Too late")


def test_only_the_agent_holding_the_conversation_leaves_a_note(conversation, bob):
    with pytest.raises(NotFound):
        note(conversation, bob)


def test_a_customer_cannot_write_a_note(persistent, customer):
    with pytest.raises(Forbidden):
        services.customer_message_send(widget=persistent, customer=customer, body="Psst", internal=True)
    assert not Message.objects.exists()


@pytest.mark.parametrize("internal", ["true", 1, "yes", [], {}])
def test_internal_must_be_true_or_false(conversation, alice, internal):
    with pytest.raises(ValidationFailed) as raised:
        services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="x", internal=internal)
    assert raised.value.extra["fields"] == {"internal": "Must be true or false."}


def test_the_same_client_id_gives_back_the_same_note(conversation, alice):
    first = services.agent_message_send(
        conversation_id=conversation.pk, agent=alice, body="Note", client_id="n-1", internal=True
    )
    again = services.agent_message_send(
        conversation_id=conversation.pk, agent=alice, body="Note", client_id="n-1", internal=True
    )
    assert first.created and not again.created and again.message.pk == first.message.pk


def test_transcripts_and_customer_emails_leave_notes_out(conversation, alice):
    note(conversation, alice, "Secret: fraud suspected")
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Visible answer")
    assert "fraud" not in transcript_text(conversation) and "Visible answer" in transcript_text(conversation)
    bodies = [m.body for m in customer_visible_messages(conversation.pk)]
    assert "Visible answer" in bodies and not any("fraud" in body for body in bodies)


def test_the_customers_conversation_object_counts_the_customers_messages(conversation, alice):
    note(conversation, alice)
    conversation.refresh_from_db()
    assert events.conversation_object(conversation)["last_seq"] == conversation.customer_last_seq
    assert events.conversation_object(conversation, for_agent=True)["last_seq"] == conversation.last_seq
    assert conversation.last_seq == conversation.customer_last_seq + 1


def test_a_note_has_no_customer_facing_object(conversation, alice):
    with pytest.raises(ValueError, match="internal note"):
        events.message_object(note(conversation, alice))


# --- Any mix of notes and messages ---------------------------------------------------------------

STEPS = st.lists(st.sampled_from(["customer", "agent", "note", "wait", "customer"]), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_any_mix_of_notes_and_messages_keeps_both_numberings_without_gaps(db, broadcasts, commit, steps):
    """Each step commits (so assignments happen between them, as in life); what an agent cannot
    do in the state the steps led to (write while the conversation is queued again) is skipped."""
    with transaction.atomic():
        queue = QueueFactory()
        agent = AgentFactory(presence=Presence.AVAILABLE, capacity=100)
        queue.agents.add(agent)
        widget = ChatWidgetFactory(
            workstream=WorkstreamFactory(queue=queue, capacity_units=10, persistent_mode=True),
            authentication_setting=AuthenticationSettingFactory(),
        )
        customer = CustomerFactory(authentication_setting=widget.authentication_setting)
        broadcasts.clear()
        notes = []
        with commit():
            conversation = services.customer_message_send(widget=widget, customer=customer, body="first").conversation
        for number, step in enumerate(steps):
            with commit():
                try:
                    if step == "customer":
                        services.customer_message_send(widget=widget, customer=customer, body=f"c{number}")
                    elif step == "agent":
                        services.agent_message_send(conversation_id=conversation.pk, agent=agent, body=f"a{number}")
                    elif step == "note":
                        note(conversation, agent, f"note {number}")
                        notes.append(f"note {number}")
                    else:
                        services.conversation_wait(conversation_id=conversation.pk, agent=agent)
                except DomainError:
                    pass
        conversation.refresh_from_db()
        customer_group = events.customer_group(customer.pk, widget.workstream_id)

        to_customer = [f["message"] for g, f in broadcasts if g == customer_group and f["type"] == "message"]
        assert [m["seq"] for m in to_customer] == list(range(1, conversation.customer_last_seq + 1))
        assert not any(m["internal"] or m["body"] in notes for m in to_customer)
        page, _ = message_page(conversation.pk, limit=200, for_customer=True)
        assert [m.customer_seq for m in page] == [m["seq"] for m in to_customer]
        caught_up, _ = message_page(conversation.pk, after_seq=0, limit=200, for_customer=True)
        assert [m.body for m in caught_up] == [m["body"] for m in to_customer]

        # Supervisors see every message of every conversation: the agents' numbering, notes in it.
        to_agents = [f["message"] for g, f in broadcasts if g == events.SUPERVISORS_GROUP and f["type"] == "message"]
        assert [m["seq"] for m in to_agents] == list(range(1, conversation.last_seq + 1))
        assert [m["body"] for m in to_agents if m["internal"]] == notes
        assert conversation.last_seq - conversation.customer_last_seq == len(notes)
        agents_page, _ = message_page(conversation.pk, limit=200)
        assert [m.seq for m in agents_page] == [m["seq"] for m in to_agents]
        transaction.set_rollback(True)
