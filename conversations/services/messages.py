"""Messages: a customer writes (into the ongoing conversation, or a new one), an agent writes,
an agent reads.

One rule decides what a message does (``_only_appends``): nearly every message goes into an active
conversation and changes nothing but its messages, ``last_seq`` and times (``_appended``); any
other message (the first, into an open or waiting conversation, an answer a returning customer
waits for) moves the conversation. Two executors carry it out with the same rule, the same
message and the same statements (conversations.services.sql):

- ``customer_message_send``, ``agent_message_send``: every message, on Django's connection, in a
  transaction whose frames go out on commit;
- ``acustomer_message_append``, ``aagent_message_append``: a socket's message that only appends,
  on a connection of the server's event loop (omnichannel.asyncdb), with no hop to a thread;
  ``None`` when the rule says otherwise, and the socket's adapter (conversations.realtime) takes
  the first executor. tests/conversations/test_message_statement.py runs every message-bearing
  state through both and compares rows and frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import Error as PsycopgError
from psycopg.errors import UniqueViolation

from agents.models import Agent
from conversations import events
from conversations.errors import (
    BodyEmpty,
    BodyTooLong,
    Forbidden,
    InvalidTransition,
    NotFound,
    OutsideOperatingHours,
    ValidationFailed,
)
from conversations.models import WRITABLE, Channel, Conversation, Customer, Message, Sender, Status
from conversations.policy import eligible_agent_ids
from conversations.services.assignment import queues_drain_request
from conversations.services.attachments import _attach, _claimed, clean_attachment_ids
from conversations.services.common import (
    _append,
    _check_agent,
    _move,
    _next_message,
    _ongoing,
    _queue_changed,
    _save,
    _system,
)
from conversations.services.lifecycle import _customer_returns
from conversations.services.prechat import _fill_customer, clean_prechat
from conversations.services.presence import agent_presence_sync
from conversations.services.sql import (
    _has_client_message,
    _insert_message,
    _inserted,
    _lock_row,
    _loop_statement_sql,
    _save_fields,
)
from omnichannel import asyncdb, rows
from workstreams.models import AutomatedMessageKind as Kind
from workstreams.models import ChatWidget

logger = logging.getLogger(__name__)

MAX_BODY = 4000
MAX_CLIENT_ID = 64


# What a message that only appends changes in its conversation, by the side that writes it.
_APPENDED_FIELDS = {
    Sender.CUSTOMER: ("last_seq", "customer_last_seq", "last_customer_message_at", "last_activity_at"),
    Sender.AGENT: ("last_seq", "customer_last_seq", "last_agent_message_at", "last_activity_at", "agent_read_seq"),
}
# What an internal note changes: only the agents' numbering, and the writer's read marker. It is
# no answer (the customer is not waiting less, no email is due, a waiting conversation stays so).
_NOTE_FIELDS = ("last_seq", "agent_read_seq")
# Where an agent may leave a note: wherever it holds the conversation, wrap-up included.
NOTE_STATUSES = WRITABLE


@dataclass
class SendResult:
    message: Message
    conversation: Conversation
    created: bool


def clean_body(body: object, *, attachments: bool = False) -> str:
    """The message's text, trimmed; it may be empty only when the message carries attachments."""
    if body is None and attachments:
        return ""
    if not isinstance(body, str):
        raise ValidationFailed("body must be a string")
    body = body.strip()
    if not body and not attachments:
        raise BodyEmpty()
    if len(body) > MAX_BODY:
        raise BodyTooLong()
    if "\x00" in body:  # no database stores it (PostgreSQL refuses it): bad input, not an outage
        raise ValidationFailed("body must not contain null characters")
    return body


def clean_internal(internal: object) -> bool:
    """``"internal"`` of a message: absent, true or false."""
    if internal is None or isinstance(internal, bool):
        return bool(internal)
    raise ValidationFailed(_("internal must be true or false"), fields={"internal": _("Must be true or false.")})


def clean_client_id(client_id: object) -> str | None:
    if client_id is None or client_id == "":
        return None
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID or "\x00" in client_id:
        raise ValidationFailed(f"client_id must be a string of at most {MAX_CLIENT_ID} characters, without nulls")
    return client_id


# The rule of both executors, written once as data: what the conversation's columns must hold for
# a message that changes nothing in it but its messages, seq and times. The conversation is
# active, and for an agent it is the agent's own and no returning customer waits for this answer
# (which clears ``returned_at``). ``_only_appends`` reads it in Python (the full path); the event
# loop's statement has it as its WHERE clause (``sql._loop_statement_sql``).
THE_AGENT = "the agent who writes"
APPENDS_WHEN: dict[str, tuple[tuple[str, object], ...]] = {
    Sender.CUSTOMER: (("status", Status.ACTIVE),),
    Sender.AGENT: (("status", Status.ACTIVE), ("agent_id", THE_AGENT), ("returned_at", None)),
}


def _only_appends(conversation: Conversation, sender: str, agent_id: int | None = None) -> bool:
    """The rule of both executors (``APPENDS_WHEN``), for the full path's locked row."""
    return all(
        getattr(conversation, attname) == (agent_id if required == THE_AGENT else required)
        for attname, required in APPENDS_WHEN[sender]
    )


def _appended(
    conversation: Conversation,
    now: datetime,
    *,
    sender: str,
    body: str,
    author: str,
    client_id: str | None,
    agent: Agent | None = None,
    attachments: list[dict] | None = None,
) -> Message:
    """The message, and what every message moves in its conversation (``seq``, times, the
    agent's read marker); nothing is written yet."""
    message = _next_message(
        conversation,
        now,
        sender=sender,
        body=body,
        agent=agent,
        author=author,
        client_id=client_id,
        attachments=attachments or None,
    )
    conversation.last_activity_at = now
    if sender == Sender.CUSTOMER:
        conversation.last_customer_message_at = now
    else:
        conversation.last_agent_message_at = now
        conversation.agent_read_seq = conversation.last_seq  # who answers has read what came before
    return message


def _start(
    widget: ChatWidget, customer: Customer, now: datetime, *, offline: bool = False, prechat: dict | None = None
) -> Conversation:
    workstream = widget.workstream
    hours = widget.effective_operating_hours
    closed = not workstream.persistent and hours is not None and not hours.is_open(now)
    if closed and not offline:
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
        started_offline=offline,
        prechat=prechat or {},
    )
    _queue_changed(conversation)
    return conversation


def customer_message_send(
    *,
    widget: ChatWidget,
    customer: Customer,
    body: object,
    client_id: object = None,
    channel: str = Channel.CHAT,
    offline: bool = False,
    internal: object = False,
    prechat: object = None,
    attachments: object = None,
) -> SendResult:
    """A customer writes: into the ongoing conversation, or a new one (rule 1). The same
    ``client_id`` again returns the stored message instead of a duplicate. ``channel``: where
    it was written (the widget, or an email answered by conversations.services.continuity);
    ``offline``: a live chat outside operating hours may start, as an offline message.
    ``internal``: a customer writes no internal note (``forbidden``). ``prechat``: the answers
    to the workstream's pre-chat form, checked when the message starts a chat conversation
    (``prechat.clean_prechat``; ignored otherwise), stored on it, and filling a visitor's name
    and email. ``attachments``: ids of the customer's uploads (``attachments._claimed``); the
    body may then be empty."""
    _no_customer_note(internal)
    attachment_ids = clean_attachment_ids(attachments)
    body = clean_body(body, attachments=bool(attachment_ids))
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
            answers = {}
            if channel == Channel.CHAT and not offline:
                answers = clean_prechat(list(workstream.prechat_fields.all()), prechat)
                _fill_customer(customer, answers)
            conversation = _start(widget, customer, now, offline=offline, prechat=answers)
        carried = _claimed(conversation, attachment_ids, customer=customer)
        appends_only = not started and _only_appends(conversation, Sender.CUSTOMER)
        status_before, agent_before = conversation.status, conversation.agent_id
        message = _appended(
            conversation,
            now,
            sender=Sender.CUSTOMER,
            body=body,
            author=customer.name,
            client_id=client_id,
            attachments=carried,
        )
        message.channel = channel
        _insert_message(message)
        _attach(message)
        events.publish_message(message)
        if appends_only:
            _save_fields(conversation, *_APPENDED_FIELDS[Sender.CUSTOMER])
            return SendResult(message, conversation, created=True)
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
            _save_fields(conversation, *_APPENDED_FIELDS[Sender.CUSTOMER], "offline_notified")
        if changed and conversation.status == Status.OPEN:
            # A conversation entered the queue (a later message in it changes nothing there).
            # After the frames above, so a client never sees "open" after "active".
            queues_drain_request(queue_ids=[conversation.queue_id])
    return SendResult(message, conversation, created=True)


def _no_customer_note(internal: object) -> None:
    if clean_internal(internal):
        raise Forbidden(_("Only agents write internal notes."))


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


def agent_message_send(
    *,
    conversation_id: int,
    agent: Agent,
    body: object,
    client_id: object = None,
    internal: object = False,
    attachments: object = None,
) -> SendResult:
    """An agent writes; writing in a waiting conversation resumes it (rule 8). ``internal``: a
    note for agents, which reaches no customer and changes nothing but the agents' numbering
    (``_note``). ``attachments``: ids of the agent's uploads for this conversation."""
    attachment_ids = clean_attachment_ids(attachments)
    body = clean_body(body, attachments=bool(attachment_ids))
    client_id = clean_client_id(client_id)
    internal = clean_internal(internal)
    now = timezone.now()
    with transaction.atomic():
        # Its own row only (the message path needs no related object; they load on first use).
        in_range = isinstance(conversation_id, int) and 0 < conversation_id <= rows.MAX_ID
        conversation = _lock_row("id = %s", [conversation_id]) if in_range else None
        if conversation is None:
            raise NotFound()
        _check_agent(conversation, agent)
        conversation.agent = agent
        if client_id is not None:
            existing = _has_client_message([conversation.pk], Sender.AGENT, client_id)
            if existing is not None:
                return SendResult(Message.objects.get(pk=existing), conversation, created=False)
        if internal:
            if conversation.status not in NOTE_STATUSES:
                raise InvalidTransition()
            carried = _claimed(conversation, attachment_ids, agent=agent)
            note = _note(conversation, now, agent=agent, body=body, client_id=client_id, attachments=carried)
            return SendResult(note, conversation, True)
        if conversation.status not in (Status.ACTIVE, Status.WAITING):
            raise InvalidTransition()
        carried = _claimed(conversation, attachment_ids, agent=agent)
        appends_only = _only_appends(conversation, Sender.AGENT, agent.pk)
        resumed = conversation.status == Status.WAITING
        if resumed:
            _move(conversation, Status.ACTIVE)
            conversation.waiting_since = None
        message = _appended(
            conversation,
            now,
            sender=Sender.AGENT,
            body=body,
            agent=agent,
            author=agent.display_name,
            client_id=client_id,
            attachments=carried,
        )
        _insert_message(message)
        _attach(message)
        events.publish_message(message)
        if appends_only:
            _save_fields(conversation, *_APPENDED_FIELDS[Sender.AGENT])
        else:
            conversation.returned_at = None
            _save(conversation, publish=True)
        if resumed:
            agent_presence_sync(agent_id=agent.pk, now=now)
    return SendResult(message, conversation, created=True)


def _note(
    conversation: Conversation,
    now: datetime,
    *,
    agent: Agent,
    body: str,
    client_id: str | None,
    attachments: list[dict] | None = None,
) -> Message:
    """An internal note in the agent's locked conversation (in ``NOTE_STATUSES``): the next
    ``seq``, no ``customer_seq``, published to agents only."""
    conversation.agent_read_seq = conversation.last_seq  # who writes has read what came before
    message = _append(
        conversation,
        now,
        internal=True,
        sender=Sender.AGENT,
        body=body,
        agent=agent,
        author=agent.display_name,
        client_id=client_id,
        attachments=attachments,
    )
    _save_fields(conversation, *_NOTE_FIELDS)
    return message


def conversation_mark_read(*, conversation_id: int, agent: Agent, seq: int) -> int:
    """The agent has seen the conversation up to ``seq`` (the inbox's unread counts). Only
    moves forward and never past ``last_seq``; one conditional UPDATE, no lock needed.
    Returns the read marker now stored (0 when the conversation is not the agent's)."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValidationFailed("seq must be a non-negative integer")
    mine = Conversation.objects.filter(pk=conversation_id, agent=agent)
    mine.filter(agent_read_seq__lt=seq).update(agent_read_seq=Least(F("last_seq"), seq))
    return mine.values_list("agent_read_seq", flat=True).first() or 0


# --- The second executor: a socket's message on the event loop ----------------------------------
# On PostgreSQL a socket's message is first offered to a connection of the server's own event loop
# (omnichannel.asyncdb), as one statement (``sql._loop_statement_sql``) written from the same
# rule (``APPENDS_WHEN``, its WHERE clause) and the same fields (``_APPENDED_FIELDS``, its SET
# list): it locks the row only while it runs, and writes nothing when the rule says no, the
# ``client_id`` is stored, or (a customer's) the widget moved to another workstream. One round
# trip, no row lock held while the loop serves other sockets. When it writes nothing, or the
# connection fails, it returns None and the socket's adapter takes the full path.
# tests/conversations/test_message_parity.py runs every message-bearing state through both.


async def acustomer_message_append(
    *,
    widget_id: int,
    workstream_id: int,
    customer_id: int,
    body: object,
    client_id: object = None,
    internal: object = False,
) -> SendResult | None:
    """``customer_message_send`` of a message that only appends, from a socket that holds the
    ids of its widget (in ``workstream_id`` when the socket authenticated) and its customer.
    None when it wrote nothing: the conversation is not active, the customer or the widget is
    gone or the widget moved to another workstream (``resolve``), or ``client_id`` is stored.
    The message's author is the customer's name as the row has it now (``Customer.name``)."""
    _no_customer_note(internal)
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    params = {
        "customer": customer_id,
        "workstream": workstream_id,
        "widget": widget_id,
        "agent": None,
        "author": None,
        "visitor": str(_("Visitor %(id)s")),
    }
    return await _append_on_loop(Sender.CUSTOMER, params, body, client_id, agent=None)


async def aagent_message_append(
    *, conversation_id: object, agent: Agent, body: object, client_id: object = None
) -> SendResult | None:
    """``agent_message_send`` of a message that only appends, from the agent's socket. None when
    it wrote nothing: the conversation is not the agent's, not active, or a returning customer
    waits for this answer, or ``client_id`` is stored."""
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    in_range = isinstance(conversation_id, int) and not isinstance(conversation_id, bool)
    if not (in_range and 0 < conversation_id <= rows.MAX_ID):
        return None
    params = {"conversation": conversation_id, "agent": agent.pk, "author": agent.display_name, "visitor": ""}
    return await _append_on_loop(Sender.AGENT, params, body, client_id, agent=agent)


async def _append_on_loop(
    sender: str, params: dict, body: str, client_id: str | None, *, agent: Agent | None
) -> SendResult | None:
    """The message, written by one statement and published; None when it wrote nothing."""
    now = timezone.now()
    params.update(sender=sender, body=body, client_id=client_id, now=now)
    for attname, required in APPENDS_WHEN[sender]:
        params[f"when_{attname}"] = params["agent"] if required == THE_AGENT else required
    sql = _loop_statement_sql(sender, APPENDS_WHEN[sender], _APPENDED_FIELDS[sender])
    try:
        async with asyncdb.connect() as conn:
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
    except UniqueViolation:
        return None  # the same client_id, sent again at the same moment: the full path answers
    except (PsycopgError, asyncdb.Unavailable):
        logger.warning("a message on the event loop's connection failed; taking the full path", exc_info=True)
        return None
    if row is None:
        return None
    message_id, author, conversation_id, seq, customer_seq, customer_id, workstream_id, agent_id = row
    # The columns the statement knows; the others are deferred, as with .only().
    known = {
        "id": conversation_id,
        "customer_id": customer_id,
        "workstream_id": workstream_id,
        "agent_id": agent_id,
        "status": Status.ACTIVE,
        "last_seq": seq,
        "customer_last_seq": customer_seq,
    }
    names = [field.attname for field in Conversation._meta.concrete_fields if field.attname in known]
    conversation = Conversation.from_db(connection.alias, names, [known[name] for name in names])
    message = Message(
        conversation=conversation,
        seq=seq,
        customer_seq=customer_seq,
        sender=sender,
        agent=agent,
        author=author,
        body=body,
        client_id=client_id,
        created_at=now,
    )
    _inserted(message, message_id)
    events.publish_message_now(message)
    return SendResult(message, conversation, created=True)
