"""Read queries of the agent inbox and the supervisor view. Each list is a fixed number of
queries whatever its length (previews and unread counts are subqueries, not loops)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Avg, Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from agents.models import Agent
from conversations.models import Conversation, Message, Sender, Status
from conversations.selectors import (
    agent_capacity,
    capacity_used_expression,
    readable_conversations,
    waiting_counts,
)
from workstreams.models import DistributionMode, PrechatField, Queue, QuickReply, Workstream

RELATED = ("workstream", "queue", "customer", "agent__user")
OPEN_STATUSES = (Status.OPEN, Status.ACTIVE, Status.WAITING, Status.WRAP_UP)


def with_preview(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Annotate the last message a person wrote (body, sender, its first attachment's name;
    automated messages are not a preview) and the customer messages the assigned agent has not read yet. The subqueries
    walk the (conversation, seq) unique index backwards."""
    last = Message.objects.filter(conversation=OuterRef("pk"), sender__in=(Sender.CUSTOMER, Sender.AGENT)).order_by(
        "-seq"
    )
    unread = (
        Message.objects.filter(conversation=OuterRef("pk"), sender=Sender.CUSTOMER, seq__gt=OuterRef("agent_read_seq"))
        .order_by()
        .values("conversation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        conversations.select_related(*RELATED)
        .prefetch_related("labels")
        .annotate(
            preview_body=Subquery(last.values("body")[:1]),
            preview_sender=Subquery(last.values("sender")[:1]),
            # A message of files only: its first file's name.
            preview_file=Subquery(last.annotate(file=KT("attachments__0__name")).values("file")[:1]),
            unread=Coalesce(Subquery(unread, output_field=IntegerField()), 0),
        )
    )


@dataclass
class Inbox:
    agent: Agent
    capacity: dict[str, int]
    groups: list[tuple[str, str, list[Conversation]]]
    pickable: list[Conversation]
    queues: list[Queue]
    waiting: dict[int, int]
    picks_enabled: bool
    total_unread: int = field(default=0)

    @property
    def waiting_total(self) -> int:
        return sum(self.waiting.values())


def inbox(agent: Agent, labels: dict[str, str], *, label: str | None = None) -> Inbox:
    """Everything the inbox's header and sidebar show, in a constant number of queries; with
    ``label``, only the conversations that carry it (the unread total stays the whole inbox's)."""
    held = Conversation.objects.filter(agent=agent, status__in=(Status.ACTIVE, Status.WAITING, Status.WRAP_UP))
    mine = list(with_preview(held).order_by("-last_activity_at", "-pk"))
    total_unread = sum(c.unread for c in mine)
    if label:
        mine = [c for c in mine if any(lb.name == label for lb in c.labels.all())]
    returned = sorted((c for c in mine if c.status == Status.ACTIVE and c.returned_at), key=lambda c: c.returned_at)
    groups = [
        ("active", labels["active"], [c for c in mine if c.status == Status.ACTIVE and not c.returned_at]),
        ("returned", labels["returned"], returned),
        ("waiting", labels["waiting"], [c for c in mine if c.status == Status.WAITING]),
        ("wrap_up", labels["wrap_up"], [c for c in mine if c.status == Status.WRAP_UP]),
    ]
    queues = list(Queue.objects.filter(agents=agent).order_by("priority", "name"))
    picks_enabled = bool(queues) and _has_pick_workstream([q.pk for q in queues])
    pickable = (
        list(
            with_preview(
                Conversation.objects.filter(
                    status=Status.OPEN, workstream__distribution_mode=DistributionMode.PICK, queue__in=queues
                ).filter(**({"labels__name": label} if label else {}))
            ).order_by("queued_at", "pk")[:100]
        )
        if picks_enabled
        else []
    )
    return Inbox(
        agent=agent,
        capacity=agent_capacity(agent),
        groups=groups,
        pickable=pickable,
        queues=queues,
        waiting=waiting_counts([q.pk for q in queues]),
        picks_enabled=picks_enabled,
        total_unread=total_unread,
    )


def _has_pick_workstream(queue_ids: list[int]) -> bool:
    return Workstream.objects.filter(queue_id__in=queue_ids, distribution_mode=DistributionMode.PICK).exists()


def readable(user) -> QuerySet[Conversation]:
    """Conversations the user may read in the inbox: the one rule of
    ``conversations.selectors.readable_by``, with what the pages show of them."""
    return readable_conversations(user).select_related(*RELATED)


def earlier_conversations(conversation: Conversation, user, limit: int = 10) -> list[Conversation]:
    """The customer's other conversations that the user may read, newest first (the customer
    panel)."""
    return list(
        with_preview(
            readable_conversations(user).filter(customer_id=conversation.customer_id).exclude(pk=conversation.pk)
        ).order_by("-created_at", "-pk")[:limit]
    )


def prechat_items(conversation: Conversation, language: str) -> list[tuple[str, str]]:
    """The conversation's pre-chat answers as (question, answer), labelled as the workstream's
    form asks now (in ``language``), in its order; an answer to a question removed since keeps
    its name."""
    answers = conversation.prechat or {}
    if not answers:
        return []
    questions = {q.name: q for q in PrechatField.objects.filter(workstream_id=conversation.workstream_id)}
    ordered = sorted(
        answers, key=lambda name: (questions[name].position, questions[name].pk) if name in questions else (1 << 16, 0)
    )
    return [(questions[name].label_in(language) if name in questions else name, answers[name]) for name in ordered]


def quick_replies(conversation: Conversation) -> list[QuickReply]:
    return list(QuickReply.objects.filter(workstream_id=conversation.workstream_id))


def transfer_targets(conversation: Conversation) -> tuple[list[Agent], list[Queue]]:
    """Agents (with their capacity in use) and queues a conversation can be transferred to."""
    agents = (
        Agent.objects.select_related("user")
        .annotate(used=capacity_used_expression())
        .exclude(pk=conversation.agent_id)
        .order_by("user__first_name", "user__username")
    )
    return list(agents), list(Queue.objects.order_by("priority", "name"))


# --- The supervisor view ----------------------------------------------------------------------------


@dataclass
class Board:
    conversations: list[Conversation]
    agents: list[Agent]
    queues: list[Queue]
    waiting: dict[int, int]
    now: datetime
    ratings: Ratings | None = None


@dataclass
class Ratings:
    """The satisfaction survey on the supervisor view: the latest answers, and the average and
    count of the last 7 days (same filters as the board)."""

    latest: list[Conversation]
    average: float | None
    count: int


RATINGS_SHOWN = 10


def ratings(*, queue_id: int | None = None, agent_id: int | None = None, label: str | None = None) -> Ratings:
    rated = Conversation.objects.filter(csat_submitted_at__isnull=False)
    if queue_id:
        rated = rated.filter(queue_id=queue_id)
    if agent_id:
        rated = rated.filter(agent_id=agent_id)
    if label:
        rated = rated.filter(labels__name=label)
    week = rated.filter(csat_submitted_at__gte=timezone.now() - timedelta(days=7)).aggregate(
        average=Avg("csat_rating"), count=Count("pk")
    )
    latest = list(rated.select_related("customer", "agent__user").order_by("-csat_submitted_at")[:RATINGS_SHOWN])
    return Ratings(latest=latest, average=week["average"], count=week["count"])


def board(
    *, queue_id: int | None = None, agent_id: int | None = None, status: str | None = None, label: str | None = None
) -> Board:
    """All conversations that are not closed (filtered), every agent with its load, every queue
    with its waiting customers, the latest satisfaction ratings: six queries."""
    conversations = with_preview(Conversation.objects.filter(status__in=OPEN_STATUSES))
    if queue_id:
        conversations = conversations.filter(queue_id=queue_id)
    if agent_id:
        conversations = conversations.filter(agent_id=agent_id)
    if status:
        conversations = conversations.filter(status=status)
    if label:
        conversations = conversations.filter(labels__name=label)
    agents = list(
        Agent.objects.select_related("user")
        .annotate(
            used=capacity_used_expression(),
            handling=Count("conversations", filter=Q(conversations__status__in=(Status.ACTIVE, Status.WAITING))),
        )
        .order_by("user__first_name", "user__username")
    )
    queues = list(Queue.objects.order_by("priority", "name"))
    return Board(
        conversations=list(conversations.order_by("status", "queued_at", "-last_activity_at", "pk")[:500]),
        agents=agents,
        queues=queues,
        waiting=waiting_counts([q.pk for q in queues]),
        now=timezone.now(),
        ratings=ratings(queue_id=queue_id, agent_id=agent_id, label=label),
    )


def transcript_text(conversation: Conversation) -> str:
    """A conversation as plain text: a header, then one block per message the customer saw, in
    order (a transcript is a document that may reach the customer: no internal notes)."""

    def stamp(value: datetime | None) -> str:
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"

    customer = conversation.customer
    lines = [
        _("Conversation #%(id)s") % {"id": conversation.pk},
        _("Customer: %(name)s") % {"name": customer.name} + (f" <{customer.email}>" if customer.email else ""),
        _("Workstream: %(name)s · queue: %(queue)s")
        % {"name": conversation.workstream.name, "queue": conversation.queue.name},
        _("Status: %(status)s") % {"status": conversation.get_status_display()},
        _("Started: %(when)s") % {"when": stamp(conversation.created_at)},
    ]
    if conversation.closed_at:
        lines.append(_("Closed: %(when)s") % {"when": stamp(conversation.closed_at)})
    if conversation.wrap_up_notes:
        lines.append(_("Wrap-up notes: %(notes)s") % {"notes": conversation.wrap_up_notes})
    lines.append("")
    messages = Message.objects.filter(conversation=conversation, customer_seq__isnull=False).order_by("seq")
    for message in messages.iterator(chunk_size=2000):
        author = message.author or (_("System") if message.sender == Sender.SYSTEM else message.get_sender_display())
        lines.append(f"[{stamp(message.created_at)}] {author}:")
        lines.extend(f"    {line}" for line in message.body.splitlines() or ([] if message.attachments else [""]))
        lines.extend(
            "    " + _("[Attachment: %(name)s]") % {"name": attachment["name"]}
            for attachment in message.attachments or ()
        )
    return "\n".join(lines) + "\n"
