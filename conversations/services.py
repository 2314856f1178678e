"""The conversation engine: every change of conversation state, and nothing else.

Each function runs in one transaction, locks what it changes (the conversation first, then
the agent), checks the transition table, raises a typed ``DomainError``, and publishes with
``transaction.on_commit`` (conversations.events). Views, consumers, tasks and the admin call
these functions and nothing else writes ``Conversation.status`` or creates a ``Message``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from django.db import connection, models, transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone
from psycopg import Error as PsycopgError
from psycopg.errors import UniqueViolation

from agents.models import Agent, Presence
from conversations import events, jobs
from conversations.authentication import get_widget
from conversations.errors import (
    AgentUnavailable,
    BodyEmpty,
    BodyTooLong,
    CustomerCannotEnd,
    InvalidTransition,
    NotFound,
    OutsideOperatingHours,
    ValidationFailed,
)
from conversations.models import (
    ONGOING,
    TRANSITIONS,
    Conversation,
    Customer,
    EndedBy,
    Message,
    Sender,
    Status,
)
from conversations.policy import AUTOMATIC_PRESENCES, eligible_agent_ids, presence_for
from conversations.selectors import capacity_used
from omnichannel import asyncdb, rows
from omnichannel.dbthreads import frame_sync_to_async
from workstreams.models import AutomatedMessageKind as Kind
from workstreams.models import ChatWidget, DistributionMode, Queue
from workstreams.selectors import automated_message

logger = logging.getLogger(__name__)

MAX_BODY = 4000
MAX_CLIENT_ID = 64
MAX_ID = rows.MAX_INTEGER  # a primary key (bigint); larger ids do not exist
UNREACHABLE_PRESENCES = (Presence.OFFLINE, Presence.AWAY)


@dataclass
class SendResult:
    message: Message
    conversation: Conversation
    created: bool


# --- Helpers --------------------------------------------------------------------------------------


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
) -> Message:
    """Add a message with the next ``seq``; the conversation row is locked by the caller,
    and the caller saves ``last_seq`` with the rest of its changes."""
    message = _next_message(
        conversation, now, sender=sender, body=body, kind=kind, agent=agent, author=author, client_id=client_id
    )
    _insert_message(message)
    events.publish_message(message)
    return message


def _next_message(conversation: Conversation, now: datetime, **fields: object) -> Message:
    """The conversation's next message (``seq``), not saved yet."""
    conversation.last_seq += 1
    return Message(conversation=conversation, seq=conversation.last_seq, created_at=now, **fields)


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


def _save(
    conversation: Conversation,
    *,
    previous_agent_id: int | None = None,
    publish: bool = True,
    queues_touched: set[int] | None = None,
) -> None:
    """Save and publish; the waiting counts of the queues the change touched are published
    after the commit, or gathered in ``queues_touched`` by a caller that saves several."""
    conversation.save()
    if publish:
        events.publish_conversation(conversation, previous_agent_id=previous_agent_id)
    touched = conversation.__dict__.pop("_queues_touched", None)
    if touched:
        if queues_touched is not None:
            queues_touched.update(touched)
        else:
            events.publish_queue_waiting(touched)


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


def request_drain(queue_ids) -> None:
    """After the commit, ask Celery to assign waiting conversations of these queues."""
    ids = sorted({int(queue_id) for queue_id in queue_ids if queue_id})
    if ids:
        jobs.drain_on_commit(ids)


def _agent_queue_ids(agent_id: int) -> list[int]:
    return list(Queue.objects.filter(agents__id=agent_id).values_list("pk", flat=True))


def _after_capacity_freed(conversation: Conversation, agent_id: int | None, now: datetime) -> None:
    if agent_id:
        sync_presence(agent_id, now)
    request_drain([conversation.queue_id, *(_agent_queue_ids(agent_id) if agent_id else [])])


def sync_presence(agent_id: int, now: datetime | None = None) -> Agent:
    """Presence follows capacity unless the agent chose otherwise: free -> available,
    partly used -> busy, full -> busy_dnd."""
    now = now or timezone.now()
    agent = _locked_agent(agent_id)
    if agent.presence_auto and agent.presence in AUTOMATIC_PRESENCES:
        _follow_capacity(agent, capacity_used([agent.pk], now)[agent.pk], now)
    return agent


def _follow_capacity(agent: Agent, used: int, now: datetime) -> None:
    """``sync_presence`` for an agent locked by the caller, who knows its capacity in use."""
    presence = presence_for(agent, used)
    if presence != agent.presence:
        agent.presence = presence
        agent.save(update_fields=["presence"])
        events.publish_agent(agent, now, used)


# --- Customer side --------------------------------------------------------------------------------


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


# --- The message path in plain SQL -----------------------------------------------------------------
# Every message runs these few statements. Profiled under load, Django's query compiler spent more
# CPU building them than PostgreSQL spent running them, so they are written out once here (from
# the models' metadata) and run on Django's own connection: same transaction, same row locks, same
# on_commit hooks, same conversions of values (raw() and get_db_prep_save), on either database.


def _lock_row(where: str, params: list) -> Conversation | None:
    """The first conversation row matching ``where`` (a constant condition of this module; values
    go in ``params``), locked (``FOR UPDATE``) where the database can lock rows."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"{rows.select(Conversation)} WHERE {where} ORDER BY id LIMIT 1{lock}", params)
        row = cursor.fetchone()
    return None if row is None else rows.instance(Conversation, row)


@lru_cache(maxsize=8)
def _insert_sql(vendor: str) -> tuple[str, tuple, bool]:
    """``INSERT INTO message (<every column but id>) … RETURNING id`` where the database can."""
    meta = Message._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    returning = connection.features.can_return_columns_from_insert
    sql = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(meta.pk.column)}"
    return sql, fields, returning


def _insert_message(message: Message) -> None:
    """``message.save(force_insert=True)`` without compiling the INSERT for every message
    (Message has no save() override and no save signals)."""
    sql, fields, returning = _insert_sql(connection.vendor)
    values = [field.get_db_prep_save(field.pre_save(message, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            pk = cursor.fetchone()[0]
        else:
            pk = connection.ops.last_insert_id(cursor, Message._meta.db_table, Message._meta.pk.column)
    message.pk = pk
    message._state.adding = False
    message._state.db = connection.alias


def _has_client_message(conversation_ids: list[int], sender: str, client_id: str) -> int | None:
    """The id of the message ``sender`` wrote with ``client_id`` in those conversations, if any
    (an index lookup on (conversation, sender, client_id))."""
    marks = ", ".join(["%s"] * len(conversation_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {connection.ops.quote_name(Message._meta.db_table)} "  # noqa: S608 - values bound
            f"WHERE conversation_id IN ({marks}) AND sender = %s AND client_id = %s LIMIT 1",
            [*conversation_ids, sender, client_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


@lru_cache(maxsize=32)
def _update_sql(vendor: str, model: type[models.Model], names: tuple[str, ...]) -> tuple[str, tuple]:
    fields = tuple(model._meta.get_field(name) for name in names)
    sets = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    return f"UPDATE {table} SET {sets} WHERE {pk} = %s", fields  # noqa: S608 - column names from the model


def _save_fields(conversation: Conversation, *names: str) -> None:
    """Write these fields of a locked conversation (a message that changed nothing else)."""
    _save_fields_of([conversation], names)


def _save_fields_of(objs: Sequence[models.Model], names: tuple[str, ...]) -> None:
    """``save(update_fields=names)`` of these locked objects of one model (which has no save()
    override and no save signals): one UPDATE compiled once, sent for every row at once
    (on PostgreSQL psycopg's ``executemany`` pipelines them: one round trip, not one per row)."""
    if not objs:
        return
    sql, fields = _update_sql(connection.vendor, type(objs[0]), names)
    params = [
        [*(field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields), row.pk] for row in objs
    ]
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)


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


def _customer_returns(conversation: Conversation, now: datetime) -> None:
    """Rule 7: a persistent customer writes into a waiting conversation."""
    agent = conversation.agent
    conversation.waiting_since = None
    if conversation.workstream.keep_same_agent and agent and agent.presence not in UNREACHABLE_PRESENCES:
        _move(conversation, Status.ACTIVE)  # back to the same agent, even above capacity
        conversation.returned_at = now
        events.publish_notification(agent.pk, "customer_returned", conversation.pk)
        sync_presence(agent.pk, now)
    else:
        _requeue(conversation, queued_at=now)


def _requeue(conversation: Conversation, *, queued_at: datetime, queue: Queue | None = None) -> None:
    _move(conversation, Status.OPEN)
    conversation.agent = None
    conversation.assigned_at = None
    conversation.returned_at = None
    conversation.waiting_since = None
    conversation.queued_at = queued_at
    conversation.notified_position = None
    conversation.notified_wait_minutes = None
    if queue is not None:
        conversation.queue = queue
        _queue_changed(conversation)
    # The caller saves, publishes, then requests the drain (frames keep their order).


def customer_conversation_end(*, widget: ChatWidget, customer: Customer) -> Conversation:
    """Live chat only (rule 9): with an agent -> wrap_up, without -> closed."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _ongoing(customer, widget.workstream_id)
        if conversation is None:
            raise NotFound()
        if conversation.workstream.persistent:
            raise CustomerCannotEnd()
        agent_id = conversation.agent_id
        if conversation.status == Status.ACTIVE:
            _move(conversation, Status.WRAP_UP)
        else:
            _move(conversation, Status.CLOSED)
            conversation.closed_at = now
        conversation.ended_at = now
        conversation.ended_by = EndedBy.CUSTOMER
        conversation.end_reason = "customer_ended"
        conversation.last_activity_at = now
        _system(conversation, now, Kind.ENDED_BY_CUSTOMER)
        _save(conversation)
        _after_capacity_freed(conversation, agent_id, now)
        if conversation.status == Status.WRAP_UP:
            _schedule_wrap_up_release(conversation)
    return conversation


def customer_connected(*, customer: Customer | CustomerRef) -> None:
    with transaction.atomic():
        locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if locked is None:  # erased meanwhile (conversations.privacy)
            return
        locked.connection_count += 1
        locked.disconnected_at = None
        locked.save(update_fields=["connection_count", "disconnected_at"])


def customer_disconnected(*, customer: Customer | CustomerRef) -> None:
    with transaction.atomic():
        locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if locked is None:  # erased while connected: nothing left to record
            return
        locked.connection_count = max(locked.connection_count - 1, 0)
        if locked.connection_count == 0:
            locked.disconnected_at = timezone.now()
        locked.save(update_fields=["connection_count", "disconnected_at"])


# --- Agent side -----------------------------------------------------------------------------------


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


# --- A message from the event loop ----------------------------------------------------------------
# Nearly every message goes into an active conversation and changes nothing but its last_seq and
# times. On PostgreSQL that case is one statement on a connection of the server's own event loop
# (omnichannel.asyncdb): it bumps last_seq under the row lock the UPDATE takes, checks the
# client_id, and inserts the message; in autocommit it is its own transaction. When the
# conversation is in any other state (none yet, open, waiting, returned, someone else's), the
# client_id was used before, or the statement fails, it writes nothing and the message takes the
# full path above on a frame thread, which decides, answers and raises exactly as before.


class WidgetRef(NamedTuple):
    """What a customer's socket keeps of its widget between frames (conversations.consumers):
    ids, not the widget with its workstream, queue, hours and authentication setting (six model
    instances per socket). Where the configuration matters (the full message path, which may
    start a conversation, and the customer's end) ``resolve`` reads the widget again, so a change
    made in the admin applies to a connected customer's next conversation."""

    pk: int
    widget_key: str
    workstream_id: int

    @classmethod
    def of(cls, widget: ChatWidget) -> WidgetRef:
        return cls(widget.pk, widget.widget_key, widget.workstream_id)


class CustomerRef(NamedTuple):
    """What a customer's socket keeps of the customer: the id, and the name its messages carry."""

    pk: int
    name: str

    @classmethod
    def of(cls, customer: Customer) -> CustomerRef:
        return cls(customer.pk, str(customer.name))


def resolve(widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef) -> tuple[ChatWidget, Customer]:
    """The widget and the customer as stored now, for what a socket holds; instances pass
    through. ``NotFound`` when either is gone (deleted, erased), or when the widget now belongs
    to another workstream: the socket's groups are those of the old one, so it would not see
    the new conversation (the client reconnects)."""
    if not isinstance(widget, ChatWidget):
        ref = widget
        widget = get_widget(pk=ref.pk)
        if widget.workstream_id != ref.workstream_id:
            raise NotFound()
    if not isinstance(customer, Customer):
        found = Customer.objects.filter(pk=customer.pk).first()
        if found is None:
            raise NotFound()
        customer = found
    return widget, customer


async def acustomer_message_send(
    *, widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef, body: object, client_id: object = None
) -> SendResult:
    """``customer_message_send`` for a consumer: one statement when the conversation is active;
    otherwise the full path, with the widget and the customer read again (``resolve``)."""
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    if asyncdb.enabled():
        params = {"customer": customer.pk, "workstream": widget.workstream_id, "agent": None, "author": customer.name}
        result = await _message_statement(Sender.CUSTOMER, params, body, client_id)
        if result is not None:
            return result
    return await frame_sync_to_async(_resolved_customer_message_send)(widget, customer, body, client_id)


def _resolved_customer_message_send(
    widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef, body: str, client_id: str | None
) -> SendResult:
    widget, customer = resolve(widget, customer)
    return customer_message_send(widget=widget, customer=customer, body=body, client_id=client_id)


def resolved_customer_conversation_end(*, widget: ChatWidget | WidgetRef, customer: Customer | CustomerRef):
    """``customer_conversation_end`` for a socket, with the widget and the customer read again."""
    widget, customer = resolve(widget, customer)
    return customer_conversation_end(widget=widget, customer=customer)


async def aagent_message_send(
    *, conversation_id: int, agent: Agent, body: object, client_id: object = None
) -> SendResult:
    """``agent_message_send`` for a consumer: one statement when the conversation is active and
    no returning customer waits for this answer."""
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    in_range = isinstance(conversation_id, int) and not isinstance(conversation_id, bool)
    if asyncdb.enabled() and in_range and 0 < conversation_id <= MAX_ID:
        params = {"conversation": conversation_id, "agent": agent.pk, "author": agent.display_name}
        result = await _message_statement(Sender.AGENT, params, body, client_id)
        if result is not None:
            return result
    return await frame_sync_to_async(agent_message_send)(
        conversation_id=conversation_id, agent=agent, body=body, client_id=client_id
    )


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


# The message row, from the conversation row the statement updated (``c``) and the parameters.
_STATEMENT_VALUES = {
    "conversation_id": "c.id",
    "seq": "c.last_seq",
    "sender": "%(sender)s",
    "agent_id": "%(agent)s",
    "author": "%(author)s",
    "kind": "''",
    "body": "%(body)s",
    "client_id": "%(client_id)s",
    "created_at": "%(now)s",
}


@lru_cache(maxsize=2)
def _statement_sql(sender: str) -> str:
    """The statement of ``_message_statement`` (PostgreSQL). The UPDATE locks the row; should the
    conversation change while it waits, PostgreSQL checks the conditions again on the new row."""
    quote = connection.ops.quote_name
    conversations = quote(Conversation._meta.db_table)
    messages = quote(Message._meta.db_table)
    fields = [field for field in Message._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(_STATEMENT_VALUES[field.attname] for field in fields)
    ongoing = ", ".join(f"'{status}'" for status in ONGOING)
    if sender == Sender.CUSTOMER:
        update = f"""UPDATE {conversations} AS t
            SET last_seq = t.last_seq + 1, last_customer_message_at = %(now)s, last_activity_at = %(now)s
            WHERE t.id = (
                SELECT id FROM {conversations}
                WHERE customer_id = %(customer)s AND workstream_id = %(workstream)s AND status IN ({ongoing})
                ORDER BY id LIMIT 1
            ) AND t.status = '{Status.ACTIVE}'"""  # noqa: S608 - names from the models
    else:
        update = f"""UPDATE {conversations} AS t
            SET last_seq = t.last_seq + 1, last_agent_message_at = %(now)s, last_activity_at = %(now)s,
                agent_read_seq = t.last_seq + 1
            WHERE t.id = %(conversation)s AND t.agent_id = %(agent)s AND t.status = '{Status.ACTIVE}'
                AND t.returned_at IS NULL"""  # noqa: S608 - names from the models
    return f"""WITH c AS (
        {update}
            AND NOT EXISTS (
                SELECT 1 FROM {messages} AS m
                WHERE m.conversation_id = t.id AND m.sender = %(sender)s AND m.client_id = %(client_id)s
            )
        RETURNING t.id, t.last_seq, t.customer_id, t.workstream_id, t.agent_id
    ), m AS (
        INSERT INTO {messages} ({columns}) SELECT {values} FROM c RETURNING id
    )
    SELECT m.id, c.id, c.last_seq, c.customer_id, c.workstream_id, c.agent_id FROM m, c"""  # noqa: S608 - names from the models


# What an assignment writes: the fields _activate sets, and last_seq (the "joined" message).
_ASSIGNED_FIELDS = (
    "status",
    "agent",
    "agent_read_seq",
    "assigned_at",
    "first_assigned_at",
    "queued_at",
    "returned_at",
    "waiting_since",
    "last_activity_at",
    "last_seq",
)


def _activate(conversation: Conversation, agent: Agent, now: datetime) -> None:
    """The conversation becomes active with ``agent`` (an assignment or a transfer to an agent)."""
    _move(conversation, Status.ACTIVE)
    conversation.agent = agent
    conversation.agent_read_seq = 0  # a new agent has read nothing yet
    conversation.assigned_at = now
    conversation.first_assigned_at = conversation.first_assigned_at or now
    conversation.queued_at = None
    conversation.returned_at = None
    conversation.waiting_since = None
    conversation.last_activity_at = now


def _assign(conversation: Conversation, agent: Agent, now: datetime) -> None:
    _assign_all([(conversation, agent)], now)


def _assign_all(pairs: list[tuple[Conversation, Agent]], now: datetime, used: dict[int, int] | None = None) -> None:
    """Open conversations, each to its agent (all locked by the caller, nothing else changed
    in them); then, once per agent, its last assignment time and its presence (from ``used``,
    the agents' capacity in use after these assignments, when the caller counted it under
    the locks), and once per queue, the waiting count. A batch costs one INSERT of its
    messages and two UPDATEs sent with ``executemany`` (conversations, agents; pipelined on
    PostgreSQL), however many rows. ``_ASSIGNED_FIELDS`` must name every field this changes."""
    templates: dict = {}
    queues_touched: set[int] = set()
    agents: dict[int, Agent] = {}
    joined: list[tuple[Conversation, int | None, Message]] = []
    for conversation, agent in pairs:
        previous = conversation.agent_id
        _activate(conversation, agent, now)
        template = _template(conversation, Kind.AGENT_JOINED, templates)
        body = template.render(agent_name=agent.display_name)
        joined.append(
            (
                conversation,
                previous,
                _next_message(conversation, now, sender=Sender.SYSTEM, body=body, kind=Kind.AGENT_JOINED),
            )
        )
        agents[agent.pk] = agent
    Message.objects.bulk_create([message for _, _, message in joined])  # one INSERT for the batch
    _save_fields_of([conversation for conversation, _, _ in joined], _ASSIGNED_FIELDS)
    for conversation, previous, message in joined:
        events.publish_message(message)
        events.publish_conversation(conversation, previous_agent_id=previous)
        queues_touched.update(conversation.__dict__.pop("_queues_touched", ()))
        events.publish_notification(conversation.agent_id, "assigned", conversation.pk)
    if used is None:
        used = capacity_used(list(agents), now)  # counts the rows just written
    moved: list[Agent] = []
    for agent in agents.values():
        agent.last_assigned_at = now
        presence = presence_for(agent, used[agent.pk])
        if presence != agent.presence:
            agent.presence = presence
            moved.append(agent)
    _save_fields_of(list(agents.values()), ("last_assigned_at", "presence"))
    for agent in moved:
        events.publish_agent(agent, now, used[agent.pk])
    if queues_touched:
        events.publish_queue_waiting(queues_touched)


def conversations_assign_locked(pairs: list[tuple[Conversation, Agent]], now: datetime, used: dict[int, int]) -> None:
    """Push assignment of a batch (conversations.assignment holds the locks of every
    conversation and agent in it, and counted ``used``, their capacity in use after it)."""
    _assign_all(pairs, now, used)


def conversation_pick(*, conversation_id: int, agent: Agent) -> Conversation:
    """Rule 3: an agent of the queue takes an open conversation of a pick workstream. Any other
    (another agent's, one open outside its pick queues, a push workstream's in the queue, an
    earlier one of its customer) does not exist for it, as in every other action; its own is
    ``invalid_transition``."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        pickable = (
            conversation.status == Status.OPEN
            and conversation.workstream.distribution_mode == DistributionMode.PICK
            and conversation.queue.agents.filter(pk=agent.pk).exists()
        )
        if not pickable:
            if conversation.agent_id == agent.pk:
                raise InvalidTransition()
            raise NotFound()
        locked_agent = _locked_agent(agent.pk)
        used = capacity_used([agent.pk], now)[agent.pk]
        if locked_agent.capacity - used < conversation.workstream.capacity_units:
            raise AgentUnavailable("You do not have enough free capacity for this conversation.")
        _assign(conversation, locked_agent, now)
    return conversation


def conversation_wait(*, conversation_id: int, agent: Agent) -> Conversation:
    """Rule 6 (✖): persistent active -> waiting; live has no waiting state and goes back
    to its queue."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked_mine(conversation_id, agent, Status.ACTIVE)
        if conversation.workstream.persistent:
            _move(conversation, Status.WAITING)
            conversation.waiting_since = now
            conversation.returned_at = None
            conversation.last_activity_at = now
            _system(conversation, now, Kind.MOVED_TO_WAITING)
            _save(conversation)
        else:
            _requeue(conversation, queued_at=now)
            conversation.last_activity_at = now  # its open period starts again in the queue
            _save(conversation, previous_agent_id=agent.pk)
        _after_capacity_freed(conversation, agent.pk, now)
    return conversation


def conversation_resume(*, conversation_id: int, agent: Agent) -> Conversation:
    """Rule 8: waiting -> active."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked_mine(conversation_id, agent, Status.WAITING)
        _move(conversation, Status.ACTIVE)
        conversation.waiting_since = None
        conversation.last_activity_at = now
        _save(conversation)
        sync_presence(agent.pk, now)
    return conversation


def conversation_mark_read(*, conversation_id: int, agent: Agent, seq: int) -> int:
    """The agent has seen the conversation up to ``seq`` (the inbox's unread counts). Only
    moves forward and never past ``last_seq``; one conditional UPDATE, no lock needed.
    Returns the read marker now stored (0 when the conversation is not the agent's)."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValidationFailed("seq must be a non-negative integer")
    mine = Conversation.objects.filter(pk=conversation_id, agent=agent)
    mine.filter(agent_read_seq__lt=seq).update(agent_read_seq=Least(F("last_seq"), seq))
    return mine.values_list("agent_read_seq", flat=True).first() or 0


def conversation_end(*, conversation_id: int, agent: Agent) -> Conversation:
    """Rule 9: an agent ends an active or waiting conversation -> wrap_up."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked_mine(conversation_id, agent, Status.ACTIVE, Status.WAITING)
        _move(conversation, Status.WRAP_UP)
        conversation.ended_at = now
        conversation.ended_by = EndedBy.AGENT
        conversation.end_reason = "agent_ended"
        conversation.waiting_since = None
        conversation.returned_at = None
        conversation.last_activity_at = now
        _system(conversation, now, Kind.ENDED_BY_AGENT, agent_name=agent.display_name)
        _save(conversation)
        _after_capacity_freed(conversation, agent.pk, now)
        _schedule_wrap_up_release(conversation)
    return conversation


def _schedule_wrap_up_release(conversation: Conversation) -> None:
    """With a custom wrap-up blocking duration, capacity frees by itself when the block ends:
    then the agent's presence follows and its queues drain (the minute sweep is the safety net)."""
    duration = conversation.workstream.wrap_up_blocks_capacity_for()
    if duration:
        jobs.presence_refresh_on_commit(conversation.agent_id, countdown=duration.total_seconds() + 1)


def agent_presence_refresh(*, agent_id: int, drain: bool = True) -> Agent:
    """Capacity that frees by itself (a custom wrap-up block ending, a capacity raised in the
    admin): presence follows it (rule 13), and the agent's queues drain (rule 4)."""
    now = timezone.now()
    with transaction.atomic():
        agent = sync_presence(agent_id, now)
        if drain:
            request_drain(_agent_queue_ids(agent_id))
    return agent


def conversation_close(*, conversation_id: int, agent: Agent, notes: str = "") -> Conversation:
    """Rule 9: the agent closes its wrap-up -> closed."""
    now = timezone.now()
    if not isinstance(notes, str) or len(notes) > 10_000 or "\x00" in notes:
        raise ValidationFailed("notes must be a string of at most 10,000 characters, without nulls")
    with transaction.atomic():
        conversation = _locked_mine(conversation_id, agent, Status.WRAP_UP)
        _move(conversation, Status.CLOSED)
        conversation.closed_at = now
        conversation.wrap_up_notes = notes.strip()
        _save(conversation)
        _after_capacity_freed(conversation, agent.pk, now)
    return conversation


def conversation_transfer(
    *,
    conversation_id: int,
    agent: Agent | None,
    to_agent: Agent | None = None,
    to_queue: Queue | None = None,
    supervisor: bool = False,
) -> Conversation:
    """Rule 10: to another agent (capacity moves) or to a queue (-> open there).
    ``agent`` is the acting agent (``None`` with ``supervisor=True``)."""
    if (to_agent is None) == (to_queue is None):
        raise ValidationFailed("Give exactly one of agent_id and queue_id.")
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if not supervisor:
            _check_agent(conversation, agent)
        allowed_from = (Status.ACTIVE, Status.WAITING, Status.OPEN) if supervisor else (Status.ACTIVE, Status.WAITING)
        if conversation.status not in allowed_from:
            raise InvalidTransition()
        previous = conversation.agent_id
        if to_agent is not None:
            if to_agent.pk == previous:
                raise InvalidTransition("The conversation is already with that agent.")
            target = _locked_agent(to_agent.pk)
            if not supervisor:
                used = capacity_used([target.pk], now)[target.pk]
                if (
                    target.presence not in conversation.workstream.allowed_presences
                    or target.capacity - used < conversation.workstream.capacity_units
                ):
                    raise AgentUnavailable()
            _activate(conversation, target, now)
            _system(conversation, now, Kind.TRANSFERRED, agent_name=target.display_name)
            _save(conversation, previous_agent_id=previous)
            events.publish_notification(target.pk, "assigned", conversation.pk)
            sync_presence(target.pk, now)
        else:
            _system(conversation, now, Kind.TRANSFERRED, queue_name=to_queue.name)
            _requeue(conversation, queued_at=now, queue=to_queue)
            conversation.last_activity_at = now
            _save(conversation, previous_agent_id=previous)
            request_drain([to_queue.pk])
        if previous:
            _after_capacity_freed(conversation, previous, now)
    return conversation


# --- Supervisors and the system -------------------------------------------------------------------


def conversation_assign(*, conversation_id: int, agent: Agent) -> Conversation:
    """A supervisor assigns an open conversation to an agent, capacity or not."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.status != Status.OPEN:
            raise InvalidTransition()
        _assign(conversation, _locked_agent(agent.pk), now)
    return conversation


def conversation_force_close(*, conversation_id: int, by_name: str = "") -> Conversation:
    """A supervisor closes any conversation that is not closed yet."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        agent_id = conversation.agent_id
        was_ended = conversation.status == Status.WRAP_UP
        _move(conversation, Status.CLOSED)
        conversation.closed_at = now
        if not was_ended:
            conversation.ended_at = now
            conversation.ended_by = EndedBy.SUPERVISOR
            conversation.end_reason = "force_closed"
            _system(conversation, now, Kind.ENDED_BY_AGENT, agent_name=by_name or "Supervisor")
        conversation.last_activity_at = now
        _save(conversation)
        _after_capacity_freed(conversation, agent_id, now)
    return conversation


def conversation_auto_close(*, conversation_id: int, reason: str) -> Conversation | None:
    """Rule 11, one conversation. ``reason`` names the timeout; the condition is checked
    again under the lock, so running it twice (or late) is harmless."""
    from conversations.sweeps import still_due

    now = timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if not still_due(conversation, reason, now):
            return None
        agent_id = conversation.agent_id
        if reason == "customer_disconnected" and conversation.status == Status.ACTIVE:
            _move(conversation, Status.WRAP_UP)
            conversation.ended_at = now
            conversation.ended_by = EndedBy.SYSTEM
            conversation.end_reason = reason
            _system(conversation, now, Kind.ENDED_BY_CUSTOMER)
        else:
            _move(conversation, Status.CLOSED)
            conversation.closed_at = now
            if conversation.ended_at is None:
                conversation.ended_at = now
                conversation.ended_by = EndedBy.SYSTEM
                conversation.end_reason = reason
            _system(conversation, now, Kind.AUTO_CLOSED)
        conversation.last_activity_at = now
        _save(conversation)
        _after_capacity_freed(conversation, agent_id, now)
        if conversation.status == Status.WRAP_UP:
            _schedule_wrap_up_release(conversation)
    return conversation


def conversation_affinity_expire(*, conversation_id: int) -> Conversation | None:
    """Rule 7: the agent did not answer a returning customer within the affinity timeout;
    the conversation goes to the queue, placed by when the customer started waiting."""
    from conversations.sweeps import still_due

    now = timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if not still_due(conversation, "affinity_timeout", now):
            return None
        previous = conversation.agent_id
        _requeue(conversation, queued_at=conversation.returned_at)
        _save(conversation, previous_agent_id=previous)
        _after_capacity_freed(conversation, previous, now)
    return conversation


def agent_set_presence(*, agent: Agent, presence: str) -> Agent:
    """Choosing "available" lets presence follow capacity again (rule 13); any other
    choice sticks. A presence that allows work triggers the agent's queues to drain."""
    if presence not in Presence.values:
        raise ValidationFailed(f"presence must be one of {', '.join(Presence.values)}")
    now = timezone.now()
    with transaction.atomic():
        locked = _locked_agent(agent.pk)
        locked.presence = presence
        locked.presence_auto = presence == Presence.AVAILABLE
        locked.save(update_fields=["presence", "presence_auto"])
        locked = sync_presence(locked.pk, now)
        events.publish_agent(locked, now)
        request_drain(_agent_queue_ids(locked.pk))
    return locked


def queue_positions_notify(*, queue_id: int) -> int:
    """Rule 5: live-chat customers waiting in a queue hear their position (from 2 on) and
    the average wait, when first queued and whenever either changes materially."""
    from conversations.selectors import queue_line

    now = timezone.now()
    queue = Queue.objects.get(pk=queue_id)
    minutes = None
    if queue.average_wait_seconds is not None:
        minutes = max(1, round(queue.average_wait_seconds / 60))
    sent = 0
    for position, queued in enumerate(queue_line(queue_id), start=1):
        if queued.workstream.persistent:
            continue
        tell_position = position >= 2 and queued.notified_position != position
        tell_wait = minutes is not None and _wait_changed(queued.notified_wait_minutes, minutes)
        if not (tell_position or tell_wait):
            continue
        with transaction.atomic():
            conversation = (
                Conversation.objects.select_for_update(of=("self",), skip_locked=True)
                .select_related("workstream", "queue", "customer", "agent__user", "widget")
                .filter(pk=queued.pk, status=Status.OPEN)
                .first()
            )
            if conversation is None:
                continue
            if tell_position:
                _system(conversation, now, Kind.QUEUE_POSITION, position=position, queue_name=queue.name)
                conversation.notified_position = position
                sent += 1
            if tell_wait:
                _system(conversation, now, Kind.AVERAGE_WAIT_TIME, minutes=minutes, queue_name=queue.name)
                conversation.notified_wait_minutes = minutes
                sent += 1
            _save(conversation, publish=False)
    return sent


def _wait_changed(previous: int | None, minutes: int) -> bool:
    if previous is None:
        return True
    return abs(previous - minutes) >= max(2, previous // 4)
