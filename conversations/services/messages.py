"""Messages: a customer writes (into the ongoing conversation, or a new one), an agent writes,
an agent reads. Two ways to write one, which must write the same (tests/conversations/
test_message_statement.py): the full path (``customer_message_send``, ``agent_message_send``:
Django's connection, a row lock, the transition and ``client_id`` checks in Python, frames on
commit), and one statement on the event loop for a message into an active conversation
(``_message_statement``; conversations.realtime chooses between them for a socket).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone
from psycopg import Error as PsycopgError
from psycopg.errors import UniqueViolation

from agents.models import Agent
from conversations import events
from conversations.errors import (
    BodyEmpty,
    BodyTooLong,
    InvalidTransition,
    NotFound,
    OutsideOperatingHours,
    ValidationFailed,
)
from conversations.models import Conversation, Customer, Message, Sender, Status
from conversations.policy import eligible_agent_ids
from conversations.services.assignment import request_drain
from conversations.services.common import _append, _check_agent, _move, _ongoing, _queue_changed, _save, _system
from conversations.services.lifecycle import _customer_returns
from conversations.services.presence import sync_presence
from conversations.services.sql import _has_client_message, _lock_row, _save_fields, _statement_sql
from omnichannel import asyncdb, rows
from workstreams.models import AutomatedMessageKind as Kind
from workstreams.models import ChatWidget

logger = logging.getLogger(__name__)

MAX_BODY = 4000
MAX_CLIENT_ID = 64
MAX_ID = rows.MAX_INTEGER  # a primary key (bigint); larger ids do not exist


@dataclass
class SendResult:
    message: Message
    conversation: Conversation
    created: bool


def clean_body(body: object) -> str:
    if not isinstance(body, str):
        raise ValidationFailed("body must be a string")
    body = body.strip()
    if not body:
        raise BodyEmpty()
    if len(body) > MAX_BODY:
        raise BodyTooLong()
    if "\x00" in body:  # no database stores it (PostgreSQL refuses it): bad input, not an outage
        raise ValidationFailed("body must not contain null characters")
    return body


def clean_client_id(client_id: object) -> str | None:
    if client_id is None or client_id == "":
        return None
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID or "\x00" in client_id:
        raise ValidationFailed(f"client_id must be a string of at most {MAX_CLIENT_ID} characters, without nulls")
    return client_id


def _start(widget: ChatWidget, customer: Customer, now: datetime) -> Conversation:
    workstream = widget.workstream
    hours = widget.effective_operating_hours
    if not workstream.persistent and hours is not None and not hours.is_open(now):
        raise OutsideOperatingHours(hours.next_opening(now))
    conversation = Conversation.objects.create(
        workstream=workstream,
        widget=widget,
        queue=workstream.queue,
        customer=customer,
        status=Status.OPEN,
        language=widget.language,
        created_at=now,
        queued_at=now,
        last_activity_at=now,
    )
    _queue_changed(conversation)
    return conversation


def customer_message_send(
    *, widget: ChatWidget, customer: Customer, body: object, client_id: object = None
) -> SendResult:
    """A customer writes: into the ongoing conversation, or a new one (rule 1). The same
    ``client_id`` again returns the stored message instead of a duplicate."""
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    now = timezone.now()
    workstream = widget.workstream
    with transaction.atomic():
        conversation = _ongoing(customer, workstream.pk, widget)
        if conversation is None:
            # Serialise the start of a conversation per customer, then look again.
            Customer.objects.select_for_update().filter(pk=customer.pk).exists()
            conversation = _ongoing(customer, workstream.pk, widget)
        if client_id is not None:
            existing = _resent(customer, workstream.pk, conversation, client_id)
            if existing is not None:
                return SendResult(existing, existing.conversation, created=False)
        started = conversation is None
        if started:
            conversation = _start(widget, customer, now)
        status_before, agent_before = conversation.status, conversation.agent_id
        message = _append(
            conversation, now, sender=Sender.CUSTOMER, body=body, author=customer.name, client_id=client_id
        )
        conversation.last_customer_message_at = now
        conversation.last_activity_at = now
        if conversation.status == Status.WAITING:
            _customer_returns(conversation, now)
        elif conversation.status == Status.OPEN:
            if workstream.persistent and not conversation.offline_notified and not _agent_reachable(conversation, now):
                _system(conversation, now, Kind.OFFLINE_PERSISTENT)
                conversation.offline_notified = True
        changed = started or conversation.status != status_before
        if started or changed or conversation.__dict__.get("_queues_touched"):
            _save(conversation, publish=changed, previous_agent_id=agent_before)
        else:
            _save_fields(conversation, "last_seq", "last_customer_message_at", "last_activity_at", "offline_notified")
        if changed and conversation.status == Status.OPEN:
            # A conversation entered the queue (a later message in it changes nothing there).
            # After the frames above, so a client never sees "open" after "active".
            request_drain([conversation.queue_id])
    return SendResult(message, conversation, created=True)


def _resent(customer: Customer, workstream_id: int, ongoing: Conversation | None, client_id: str) -> Message | None:
    """The message this customer already sent with ``client_id``: in the ongoing conversation,
    or, when there is none (it ended meanwhile), in the customer's latest ones. Both lookups
    use indexes ((conversation, sender, client_id) and (customer, workstream, created))."""
    if ongoing is not None:
        ids = [ongoing.pk]
    else:
        ids = list(
            Conversation.objects.filter(customer=customer, workstream_id=workstream_id)
            .order_by("-created_at")
            .values_list("pk", flat=True)[:3]
        )
    # Nearly always there is none: ask for its id alone, and load the message only on a hit.
    message_id = _has_client_message(ids, Sender.CUSTOMER, client_id) if ids else None
    if message_id is None:
        return None
    message = Message.objects.get(pk=message_id)
    if ongoing is not None and message.conversation_id == ongoing.pk:
        message.conversation = ongoing
    else:
        message.conversation = Conversation.objects.select_related(
            "workstream", "queue", "agent__user", "customer"
        ).get(pk=message.conversation_id)
    return message


def _agent_reachable(conversation: Conversation, now: datetime) -> bool:
    return conversation.queue.is_open(now) and bool(eligible_agent_ids(conversation, now))


def agent_message_send(*, conversation_id: int, agent: Agent, body: object, client_id: object = None) -> SendResult:
    """An agent writes; writing in a waiting conversation resumes it (rule 8)."""
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    now = timezone.now()
    with transaction.atomic():
        # Its own row only (the message path needs no related object; they load on first use).
        in_range = isinstance(conversation_id, int) and 0 < conversation_id <= MAX_ID
        conversation = _lock_row("id = %s", [conversation_id]) if in_range else None
        if conversation is None:
            raise NotFound()
        _check_agent(conversation, agent)
        conversation.agent = agent
        if client_id is not None:
            existing = _has_client_message([conversation.pk], Sender.AGENT, client_id)
            if existing is not None:
                return SendResult(Message.objects.get(pk=existing), conversation, created=False)
        if conversation.status not in (Status.ACTIVE, Status.WAITING):
            raise InvalidTransition()
        resumed = conversation.status == Status.WAITING
        if resumed:
            _move(conversation, Status.ACTIVE)
            conversation.waiting_since = None
        message = _append(
            conversation,
            now,
            sender=Sender.AGENT,
            body=body,
            agent=agent,
            author=agent.display_name,
            client_id=client_id,
        )
        conversation.last_agent_message_at = now
        conversation.last_activity_at = now
        conversation.agent_read_seq = conversation.last_seq  # who answers has read what came before
        changed = resumed or conversation.returned_at is not None
        conversation.returned_at = None
        if changed:
            _save(conversation, publish=True)
        else:
            _save_fields(conversation, "last_seq", "last_agent_message_at", "last_activity_at", "agent_read_seq")
        if resumed:
            sync_presence(agent.pk, now)
    return SendResult(message, conversation, created=True)


def conversation_mark_read(*, conversation_id: int, agent: Agent, seq: int) -> int:
    """The agent has seen the conversation up to ``seq`` (the inbox's unread counts). Only
    moves forward and never past ``last_seq``; one conditional UPDATE, no lock needed.
    Returns the read marker now stored (0 when the conversation is not the agent's)."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValidationFailed("seq must be a non-negative integer")
    mine = Conversation.objects.filter(pk=conversation_id, agent=agent)
    mine.filter(agent_read_seq__lt=seq).update(agent_read_seq=Least(F("last_seq"), seq))
    return mine.values_list("agent_read_seq", flat=True).first() or 0


# --- A message from the event loop ----------------------------------------------------------------
# Nearly every message goes into an active conversation and changes nothing but its last_seq and
# times. On PostgreSQL that case is one statement on a connection of the server's own event loop
# (omnichannel.asyncdb): it bumps last_seq under the row lock the UPDATE takes, checks the
# client_id, and inserts the message; in autocommit it is its own transaction. When the
# conversation is in any other state (none yet, open, waiting, returned, someone else's), the
# client_id was used before, or the statement fails, it writes nothing and the message takes the
# full path above on a frame thread (conversations.realtime), which decides, answers and raises
# exactly as before.


async def _message_statement(sender: str, params: dict, body: str, client_id: str | None) -> SendResult | None:
    """The message, written by one statement and published; None when it wrote nothing."""
    now = timezone.now()
    params.update(sender=sender, body=body, client_id=client_id, now=now)
    try:
        async with asyncdb.connect() as conn:
            cursor = await conn.execute(_statement_sql(sender), params)
            row = await cursor.fetchone()
    except UniqueViolation:
        return None  # the same client_id, sent again at the same moment: the full path answers
    except (PsycopgError, asyncdb.Unavailable):
        logger.warning("the one-statement message path failed; taking the full path", exc_info=True)
        return None
    if row is None:
        return None
    message_id, conversation_id, seq, customer_id, workstream_id, agent_id = row
    # The columns the statement knows; the others are deferred, as with .only().
    known = {
        "id": conversation_id,
        "customer_id": customer_id,
        "workstream_id": workstream_id,
        "agent_id": agent_id,
        "status": Status.ACTIVE,
        "last_seq": seq,
    }
    names = [field.attname for field in Conversation._meta.concrete_fields if field.attname in known]
    conversation = Conversation.from_db(connection.alias, names, [known[name] for name in names])
    message = Message(
        id=message_id,
        conversation=conversation,
        seq=seq,
        sender=sender,
        agent_id=params["agent"],
        author=params["author"],
        body=body,
        client_id=client_id,
        created_at=now,
    )
    message._state.adding = False
    message._state.db = connection.alias
    events.publish_message_committed(message)
    return SendResult(message, conversation, created=True)
