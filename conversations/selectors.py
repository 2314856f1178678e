"""Read queries of the conversation engine used in more than one place."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import connection
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from agents.models import Agent
from conversations.models import ONGOING, Conversation, Customer, Message, Sender, Status
from omnichannel import rows
from workstreams.models import DistributionMode, Queue, Workstream, WrapUpCapacity


def _capacity_blocking(now: datetime) -> Q:
    """Conversations that use their agent's capacity at ``now``: active ones, and wrap-up
    ones while their workstream blocks capacity for wrap-up."""
    return (
        Q(status=Status.ACTIVE)
        | Q(status=Status.WRAP_UP, workstream__wrap_up_capacity=WrapUpCapacity.ALWAYS)
        | Q(status=Status.WRAP_UP, workstream__wrap_up_capacity=WrapUpCapacity.CUSTOM, block_until__gt=now)
    )


def _blocking_conversations(now: datetime):
    return Conversation.objects.annotate(
        block_until=ExpressionWrapper(
            F("ended_at") + F("workstream__wrap_up_block_duration"), output_field=DateTimeField()
        )
    ).filter(_capacity_blocking(now))


def capacity_used(agent_ids: Iterable[int], now: datetime | None = None) -> dict[int, int]:
    """Capacity units in use per agent, derived from their conversations (never stored)."""
    now = now or timezone.now()
    ids = list(agent_ids)
    used = dict.fromkeys(ids, 0)
    if not ids:
        return used
    rows = (
        _blocking_conversations(now)
        .filter(agent_id__in=ids)
        .values("agent_id")
        .annotate(units=Sum("workstream__capacity_units"))
    )
    for row in rows:
        used[row["agent_id"]] = row["units"] or 0
    return used


def agent_capacity(agent: Agent, now: datetime | None = None) -> dict[str, int]:
    used = capacity_used([agent.pk], now)[agent.pk]
    return {"total": agent.capacity, "used": used, "available": max(agent.capacity - used, 0)}


def current_conversation(customer: Customer, workstream: Workstream) -> Conversation | None:
    """The customer's current conversation: the ongoing one, else one in wrap-up (ended by
    the agent, who is finishing notes; the customer's next message starts a new one)."""
    base = Conversation.objects.filter(customer=customer, workstream=workstream).select_related(
        "workstream", "queue", "agent__user"
    )
    return (
        base.filter(status__in=ONGOING).first()
        or base.filter(status=Status.WRAP_UP).order_by("-ended_at", "-pk").first()
    )


# The statuses in which a conversation is an agent's current one with its customer.
HELD = (Status.ACTIVE, Status.WAITING, Status.WRAP_UP)


def readable_by(user) -> Q:
    """The one rule of who may read a conversation, for every adapter (REST, inbox pages,
    transcript, history, sockets): staff read all; an agent reads what it may act on (its own
    conversations, the open ones of its pick queues) and the *closed* conversations of a
    customer whose current conversation it holds. Anything else does not exist for it."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_staff:
        return Q()
    # By the user's id, so a request needs no query for the agent first (a user that is no agent
    # reads nothing). A conversation the customer has now with another agent, in a queue this
    # agent is not in, is not this agent's to read: earlier ones only once closed.
    user_id = user.pk
    held = Conversation.objects.filter(agent__user_id=user_id, status__in=HELD).values("customer_id")
    return (
        Q(agent__user_id=user_id)
        | _open_in_pick_queues(agent__user_id=user_id)
        | Q(status=Status.CLOSED, customer_id__in=held)
    )


def readable_conversations(user):
    """``Conversation.objects`` narrowed to ``readable_by(user)``."""
    return Conversation.objects.filter(readable_by(user))


def _open_in_pick_queues(**agent: int) -> Q:
    member = Queue.agents.through.objects.filter(queue_id=OuterRef("queue_id"), **agent)
    return Q(status=Status.OPEN, workstream__distribution_mode=DistributionMode.PICK) & Q(Exists(member))


def waiting_counts(queue_ids: Iterable[int]) -> dict[int, int]:
    """Customers waiting for an agent (open conversations) per queue, in one query."""
    ids = list(queue_ids)
    counts = dict.fromkeys(ids, 0)
    rows = (
        Conversation.objects.filter(queue_id__in=ids, status=Status.OPEN)
        .values("queue_id")
        .annotate(n=Count("pk"))
        .values_list("queue_id", "n")
    )
    counts.update(dict(rows))
    return counts


def queue_line(queue_id: int) -> list[Conversation]:
    """Open conversations of push workstreams in a queue, first in first out."""
    return list(
        Conversation.objects.filter(
            queue_id=queue_id, status=Status.OPEN, workstream__distribution_mode=DistributionMode.PUSH
        )
        .select_related("workstream")
        .order_by("queued_at", "pk")
    )


DEFAULT_PAGE = 50
MAX_PAGE = 200


def message_page(
    conversation_id: int,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = DEFAULT_PAGE,
    for_customer: bool = False,
) -> tuple[list, bool]:
    """A page of messages in ascending ``seq`` and whether there are more in that direction:
    after ``after_seq`` (oldest first: what a reconnecting client missed), before
    ``before_seq`` (the page just older), or the latest ``limit``. ``for_customer``: the
    messages a customer sees, by the customer's numbering (``customer_seq``: no internal
    notes). Uses the ``(conversation, seq)`` or ``(conversation, customer_seq)`` unique index;
    the statement is written out once (omnichannel.rows: every history request and reconnect
    runs it)."""
    limit = max(1, min(int(limit), MAX_PAGE))
    if not 0 < conversation_id <= rows.MAX_ID:
        return [], False
    seq = "customer_seq" if for_customer else "seq"
    if after_seq is not None:
        after_seq = min(after_seq, rows.MAX_ID)  # no seq is larger: nothing after it
        condition, params, newest_first = f"AND {seq} > %s ORDER BY {seq}", [after_seq], False
    elif before_seq is not None:
        before_seq = min(before_seq, rows.MAX_ID)  # every seq is before it
        condition, params, newest_first = f"AND {seq} < %s ORDER BY {seq} DESC", [before_seq], True
    elif for_customer:
        condition, params, newest_first = f"AND {seq} IS NOT NULL ORDER BY {seq} DESC", [], True
    else:
        condition, params, newest_first = f"ORDER BY {seq} DESC", [], True
    with connection.cursor() as cursor:
        cursor.execute(
            f"{rows.select(Message)} WHERE conversation_id = %s {condition} LIMIT %s",
            [conversation_id, *params, limit + 1],
        )
        found = rows.instances(Message, cursor.fetchall())
    page = found[:limit]
    if newest_first:
        page.reverse()
    return page, len(found) > limit


def is_agents_conversation(conversation_id: int, user_id: int) -> bool:
    """Whether the conversation is assigned to the agent whose user this is: the visibility
    check of nearly every page of messages, written out once (as omnichannel.rows' are)."""
    if not 0 < conversation_id <= rows.MAX_ID:
        return False
    with connection.cursor() as cursor:
        cursor.execute(_agents_conversation_sql(connection.vendor), [conversation_id, user_id])
        return cursor.fetchone() is not None


@lru_cache(maxsize=8)
def _agents_conversation_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    conversations, agents = quote(Conversation._meta.db_table), quote(Agent._meta.db_table)
    return (
        f"SELECT 1 FROM {conversations} INNER JOIN {agents} ON {agents}.id = {conversations}.agent_id "  # noqa: S608
        f"WHERE {conversations}.id = %s AND {agents}.user_id = %s LIMIT 1"
    )


def capacity_used_expression(now: datetime | None = None):
    """The same derived capacity as ``capacity_used``, as an expression to annotate agents
    with (``Agent.objects.annotate(used=capacity_used_expression())``): one query for a list."""
    now = now or timezone.now()
    units = (
        _blocking_conversations(now)
        .filter(agent_id=OuterRef("pk"))
        .values("agent_id")
        .annotate(units=Sum("workstream__capacity_units"))
        .values("units")[:1]
    )
    return Coalesce(Subquery(units, output_field=IntegerField()), 0)


# --- Email continuity (conversations.services.continuity) -----------------------------------------

# An agent's answer older than this is not emailed as unread any more (a workstream's delay
# switched on late does not mail a customer about last month's conversations).
UNREAD_HORIZON = timedelta(days=3)


def customer_visible_messages(conversation_id: int, *, after_seq: int = 0):
    """The messages of a conversation its customer sees (a transcript, an email: no internal
    notes), oldest first. ``after_seq``: the agents' numbering (``Conversation.emailed_seq``)."""
    return Message.objects.filter(
        conversation_id=conversation_id, seq__gt=after_seq, customer_seq__isnull=False
    ).order_by("seq")


def unread_replies(conversation: Conversation, now: datetime) -> list[Message]:
    """The agent's answers in ``conversation`` that have not reached its customer, when the first
    of them is due for an email (``email_unread_after`` of the workstream; at once for an offline
    message); else []. An answer has reached the customer when a socket of the customer was open
    at or after it was written (connected now, or disconnected later: a socket opening replays the
    conversation) or the customer fetched the messages over REST after it was written."""
    customer = conversation.customer
    delay = timedelta(0) if conversation.started_offline else conversation.workstream.email_unread_after
    if delay is None or not customer.email or customer.email_unsubscribed_at or customer.connection_count:
        return []
    seen = [moment for moment in (customer.disconnected_at, customer.fetched_at) if moment is not None]
    answers = customer_visible_messages(conversation.pk, after_seq=conversation.emailed_seq).filter(
        sender=Sender.AGENT, created_at__gte=now - delay - UNREAD_HORIZON
    )
    if seen:
        answers = answers.filter(created_at__gt=max(seen))
    answers = list(answers[:200])
    if not answers or answers[0].created_at > now - delay:
        return []
    return answers


def unread_replies_due(now: datetime, limit: int = 500) -> list[int]:
    """Conversations that may hold an answer due for an email (``unread_replies`` decides, on the
    locked row): an agent wrote after the last email and after the customer was last seen."""
    customer_away = Q(customer__connection_count=0, customer__email_unsubscribed_at__isnull=True) & ~Q(
        customer__email=""
    )
    unseen = (
        Q(last_seq__gt=F("emailed_seq"), last_agent_message_at__isnull=False)
        & (Q(customer__disconnected_at__isnull=True) | Q(last_agent_message_at__gt=F("customer__disconnected_at")))
        & (Q(customer__fetched_at__isnull=True) | Q(last_agent_message_at__gt=F("customer__fetched_at")))
    )
    delays = Q(started_offline=True, last_activity_at__gte=now - UNREAD_HORIZON)
    for workstream_id, delay in Workstream.objects.filter(email_unread_after__isnull=False).values_list(
        "pk", "email_unread_after"
    ):
        delays |= Q(workstream_id=workstream_id, last_activity_at__gte=now - delay - UNREAD_HORIZON)
    # Every status named, so PostgreSQL reads the (status, last_activity_at) index, not the table.
    return list(
        Conversation.objects.filter(delays, customer_away, unseen, status__in=Status.values)
        .order_by("last_agent_message_at")
        .values_list("pk", flat=True)[:limit]
    )


# --- Agents away from the inbox (conversations.services.continuity.agent_notices_email) ---------

# Nothing older than this goes in an agent's email (an agent who never opened the inbox is not
# mailed about last week's assignments).
AGENT_NOTICE_HORIZON = timedelta(days=1)


def agent_notices(agent: Agent, now: datetime) -> list[tuple[Conversation, bool]]:
    """What needs ``agent`` and happened while no inbox of theirs was open, since they were last
    emailed: their active conversations assigned to them, or whose customer came back to them
    (``True``), after both the last inbox closed and the last email. Oldest first."""
    seen = max(m for m in (agent.inbox_left_at, agent.noticed_at, now - AGENT_NOTICE_HORIZON) if m is not None)
    conversations = (
        Conversation.objects.filter(agent=agent, status=Status.ACTIVE)
        .filter(Q(assigned_at__gt=seen) | Q(returned_at__gt=seen))
        .select_related("customer")
        .order_by("pk")
    )
    notices = [(c, c.returned_at is not None and c.returned_at > seen) for c in conversations[:100]]
    return sorted(notices, key=lambda n: n[0].returned_at if n[1] else n[0].assigned_at)


def agent_notices_due(now: datetime, delay: timedelta, limit: int = 500) -> list[int]:
    """Agents to email: they want it, have an address and no inbox open, and something in
    ``agent_notices`` is at least ``delay`` old (what came after it goes in the same email)."""
    floor = Value(now - AGENT_NOTICE_HORIZON, output_field=DateTimeField())
    seen = Greatest(Coalesce("agent__inbox_left_at", floor), Coalesce("agent__noticed_at", floor))
    due = now - delay
    return list(
        Conversation.objects.filter(
            status=Status.ACTIVE,
            agent__email_notifications=True,
            agent__inbox_connections=0,
        )
        .exclude(agent__user__email="")
        .alias(seen=seen)
        .filter(Q(assigned_at__gt=F("seen"), assigned_at__lte=due) | Q(returned_at__gt=F("seen"), returned_at__lte=due))
        .order_by()
        .values_list("agent_id", flat=True)
        .distinct()[:limit]
    )
