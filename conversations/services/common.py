"""The steps every service is made of: lock the rows it changes (``_locked``, ``_locked_mine``,
``_locked_agent``, ``_ongoing``), move the conversation through the one table of transitions
(``_move``), append messages (``_append``, ``_system``), save and publish (``_save``).

Lock order everywhere: conversation row, then the queue row, then agent rows in id order.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from agents.models import Agent
from conversations import events
from conversations.errors import InvalidTransition, NotFound
from conversations.models import ONGOING, TRANSITIONS, Conversation, Customer, Message, Sender, Status
from conversations.services.attachments import _attach
from conversations.services.sql import _insert_message, _lock_row
from workstreams.models import ChatWidget
from workstreams.selectors import automated_message


def _locked(conversation_id: int) -> Conversation:
    try:
        return (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("workstream", "queue", "customer", "agent__user", "widget")
            .get(pk=conversation_id)
        )
    except Conversation.DoesNotExist:
        raise NotFound() from None


def _locked_agent(agent_id: int) -> Agent:
    return Agent.objects.select_for_update(of=("self",)).select_related("user").get(pk=agent_id)


def _check_agent(conversation: Conversation, agent: Agent) -> None:
    """An agent acts only on conversations assigned to it; anything else does not exist."""
    if conversation.agent_id != agent.pk:
        raise NotFound()


def _locked_mine(conversation_id: int, agent: Agent, *statuses: str) -> Conversation:
    """The agent's own conversation, locked, in one of ``statuses`` (else invalid_transition)."""
    conversation = _locked(conversation_id)
    _check_agent(conversation, agent)
    if conversation.status not in statuses:
        raise InvalidTransition()
    return conversation


def _ongoing(customer: Customer, workstream_id: int, widget: ChatWidget | None = None) -> Conversation | None:
    """The customer's ongoing conversation, locked. Only its own row is read: the customer and
    the widget's workstream are attached from what the caller holds, anything else loads on
    first use (the message path needs none of it; a join of six tables cost more to plan than
    to run)."""
    conversation = _lock_row(
        "customer_id = %s AND workstream_id = %s AND status IN (%s, %s, %s)", [customer.pk, workstream_id, *ONGOING]
    )
    if conversation is not None:
        conversation.customer = customer
        if widget is not None and widget.workstream_id == workstream_id:
            conversation.workstream = widget.workstream
            if conversation.widget_id == widget.pk:
                conversation.widget = widget
    return conversation


def _move(conversation: Conversation, to: str) -> None:
    if to not in TRANSITIONS[conversation.status]:
        raise InvalidTransition()
    if Status.OPEN in (conversation.status, to):
        _queue_changed(conversation)
    conversation.status = to


def _queue_changed(conversation: Conversation) -> None:
    """The number of customers waiting in the conversation's queue may have changed; ``_save``
    publishes the new count (the inbox's live "waiting" figure)."""
    touched = conversation.__dict__.setdefault("_queues_touched", set())
    touched.add(conversation.queue_id)


def _append(
    conversation: Conversation,
    now: datetime,
    *,
    sender: str,
    body: str,
    kind: str = "",
    agent: Agent | None = None,
    author: str = "",
    client_id: str | None = None,
    internal: bool = False,
    attachments: list[dict] | None = None,
) -> Message:
    """Add a message with the next ``seq`` (``internal``: a note, agents only; ``attachments``:
    the uploads it carries, from ``attachments._claimed``); the conversation row is locked by the
    caller, and the caller saves both seqs with the rest of its changes."""
    message = _next_message(
        conversation,
        now,
        internal=internal,
        sender=sender,
        body=body,
        kind=kind,
        agent=agent,
        author=author,
        client_id=client_id,
        attachments=attachments or None,
    )
    _insert_message(message)
    _attach(message)
    events.publish_message(message)
    return message


def _next_message(conversation: Conversation, now: datetime, *, internal: bool = False, **fields: object) -> Message:
    """The conversation's next message (``seq``), not saved yet; unless it is an internal
    note, also the customer's next one (``customer_seq``)."""
    conversation.last_seq += 1
    if not internal:
        conversation.customer_last_seq += 1
    customer_seq = None if internal else conversation.customer_last_seq
    return Message(
        conversation=conversation, seq=conversation.last_seq, customer_seq=customer_seq, created_at=now, **fields
    )


def _system(
    conversation: Conversation, now: datetime, kind: str, *, templates: dict | None = None, **values: object
) -> Message:
    """An automated message; ``templates`` caches the message rows across one batch."""
    body = _template(conversation, kind, templates).render(**values)
    return _append(conversation, now, sender=Sender.SYSTEM, body=body, kind=kind)


def _template(conversation: Conversation, kind: str, templates: dict | None):
    key = (conversation.workstream_id, kind, conversation.language)
    template = templates.get(key) if templates is not None else None
    if template is None:
        template = automated_message(conversation.workstream, kind, conversation.language)
        if templates is not None:
            templates[key] = template
    return template


def _csat_due(conversation: Conversation) -> bool:
    """Whether to ask the customer for a rating now: the workstream asks, an agent took part,
    it was not asked yet, and a live chat has ended or a persistent conversation is closed."""
    if conversation.csat_requested_at is not None or conversation.first_assigned_at is None:
        return False
    if conversation.status == Status.CLOSED or (conversation.ended_at and not conversation.workstream.persistent):
        return conversation.workstream.csat_enabled
    return False


def _save(
    conversation: Conversation,
    *,
    previous_agent_id: int | None = None,
    publish: bool = True,
    queues_touched: set[int] | None = None,
) -> None:
    """Save and publish; the waiting counts of the queues the change touched are published
    after the commit, or gathered in ``queues_touched`` by a caller that saves several. A
    conversation that has just ended (live) or closed (persistent) asks its customer for a
    rating where its workstream says so (``_csat_due``), once."""
    csat = _csat_due(conversation)
    if csat:
        conversation.csat_requested_at = timezone.now()
    conversation.save()
    if csat:
        events.publish_csat_request(conversation)
    if publish:
        events.publish_conversation(conversation, previous_agent_id=previous_agent_id)
    touched = conversation.__dict__.pop("_queues_touched", None)
    if touched:
        if queues_touched is not None:
            queues_touched.update(touched)
        else:
            events.publish_queue_waiting(touched)
