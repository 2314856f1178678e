"""Assignment, the engine's writes (rule 2 and rule 3): push assignment of a queue in batches,
a pick, a supervisor's assign, and asking for a drain after the commit; then the live-chat
queue messages of the customers still waiting (rule 5). Who may take a conversation and in
which order is the policy's (conversations.policy); this module locks and writes.

Push assignment: queues in priority order, each first in first out, to the eligible agent
chosen by the workstream's method, under row locks so that concurrent workers never
over-assign an agent or assign a conversation twice. Lock order everywhere: conversation,
then queue (round robin), then agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Avg, DurationField, ExpressionWrapper, F, prefetch_related_objects
from django.utils import timezone

from agents.models import Agent
from conversations import events, jobs
from conversations.errors import AgentUnavailable, InvalidTransition, NotFound
from conversations.models import Conversation, Message, Sender, Status
from conversations.policy import presence_for, rank_agents
from conversations.selectors import capacity_used, queue_line
from conversations.services.common import _locked, _locked_agent, _move, _next_message, _save, _system, _template
from conversations.services.sql import _save_fields_of
from workstreams.models import AssignmentMethod, DistributionMode, Queue
from workstreams.models import AutomatedMessageKind as Kind


def queues_drain_request(*, queue_ids: Iterable[int]) -> None:
    """After the commit, ask Celery to assign waiting conversations of these queues."""
    ids = sorted({int(queue_id) for queue_id in queue_ids if queue_id})
    if ids:
        jobs.drain_on_commit(ids)


def _agent_queue_ids(agent_id: int) -> list[int]:
    return list(Queue.objects.filter(agents__id=agent_id).values_list("pk", flat=True))


def queue_agents_set(*, queue_id: int, agent_ids: Iterable[int]) -> Queue:
    """An administrator sets who works in a queue (the admin). An agent who joins frees
    capacity for it (rule 4): the queue drains after the commit, not at the next minute sweep.
    Locks the queue row (an assignment batch of the queue ranks its agents under that lock)."""
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue_id)
        before = set(queue.agents.values_list("pk", flat=True))
        after = {int(agent_id) for agent_id in agent_ids}
        if before - after:
            queue.agents.remove(*(before - after))
        if after - before:
            queue.agents.add(*(after - before))
            queues_drain_request(queue_ids=[queue.pk])
    return queue


# What an assignment writes: the fields _activate sets, and both seqs (the "joined" message).
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
    "customer_last_seq",
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
    # The agent-facing frames carry the labels: one query for the batch, not one each.
    prefetch_related_objects([conversation for conversation, _, _ in joined], "labels")
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


def conversation_assign(*, conversation_id: int, agent: Agent) -> Conversation:
    """A supervisor assigns an open conversation to an agent, capacity or not."""
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.status != Status.OPEN:
            raise InvalidTransition()
        _assign(conversation, _locked_agent(agent.pk), now)
    return conversation


BATCH = 50  # conversations assigned per transaction


def _assign_batch(queue_id: int, *, skip_workstreams: set[int], size: int = BATCH) -> tuple[int, set[int], int]:
    """Assign the first conversations of the queue that can be assigned now, up to ``size``,
    in one transaction. Returns (assigned, workstreams whose head found no eligible agent,
    conversations looked at); nothing looked at means nothing is left to try.

    Locks: the conversations (skipping those another worker holds; waiting for the head when
    only held ones are left), then the queue (one assignment batch per queue at a time, so a
    second worker ranks agents with the first one's assignments counted), then every agent of
    the queue in id order. Ranking happens under those locks, counting this batch's own
    assignments as it goes: no agent goes over capacity."""
    now = timezone.now()
    with transaction.atomic():
        line = (
            Conversation.objects.select_related("workstream", "queue", "customer", "widget", "agent__user")
            .filter(queue_id=queue_id, status=Status.OPEN, workstream__distribution_mode=DistributionMode.PUSH)
            .exclude(workstream_id__in=skip_workstreams)
            .order_by("queued_at", "pk")
        )
        conversations = list(line.select_for_update(of=("self",), skip_locked=True)[:size])
        if not conversations:
            # Only locked rows are left (a customer writing into one, another worker assigning
            # it): wait for the head rather than leave it to the minute sweep. PostgreSQL
            # re-checks the row after the wait, so one assigned meanwhile drops out.
            conversations = list(line.select_for_update(of=("self",))[:1])
        if not conversations:
            return 0, set(), 0
        queue = Queue.objects.select_for_update().get(pk=queue_id)
        if not queue.is_open(now):
            return 0, set(), 0
        agents = list(
            Agent.objects.select_for_update(of=("self",)).select_related("user").filter(queues=queue_id).order_by("pk")
        )
        used = capacity_used([agent.pk for agent in agents], now)
        cursor = queue.round_robin_cursor or 0
        pairs: list[tuple[Conversation, Agent]] = []
        blocked: set[int] = set()
        for conversation in conversations:
            workstream = conversation.workstream
            if workstream.pk in blocked:
                continue  # its head found no agent; nor will the ones behind it
            conversation.queue = queue
            allowed = set(workstream.allowed_presences)
            ranked = rank_agents(
                [agent for agent in agents if agent.presence in allowed],
                used,
                workstream.capacity_units,
                workstream.assignment_method,
                cursor,
                now,
            )
            if not ranked:
                blocked.add(workstream.pk)
                continue
            agent = ranked[0]
            pairs.append((conversation, agent))
            used[agent.pk] += workstream.capacity_units
            agent.last_assigned_at = now
            if workstream.assignment_method == AssignmentMethod.ROUND_ROBIN:
                cursor = agent.pk
        if pairs:
            _assign_all(pairs, now, used)
            if cursor != (queue.round_robin_cursor or 0):
                Queue.objects.filter(pk=queue_id).update(round_robin_cursor=cursor)
    return len(pairs), blocked, len(conversations)


def queue_drain(*, queue_id: int, limit: int = 10_000) -> int:
    """Assign as many waiting conversations of one queue as agents can take."""
    assigned = 0
    blocked: set[int] = set()
    while assigned < limit:
        done, newly_blocked, looked_at = _assign_batch(
            queue_id, skip_workstreams=blocked, size=min(BATCH, limit - assigned)
        )
        assigned += done
        blocked |= newly_blocked
        if not looked_at or not (done or newly_blocked):
            break
    if assigned or blocked:
        queue_positions_publish(queue_id=queue_id)
    return assigned


def queues_drain(*, queue_ids: Iterable[int] | None = None) -> int:
    """Drain queues in priority order (all queues when ``queue_ids`` is None)."""
    queues = Queue.objects.order_by("priority", "pk")
    if queue_ids is not None:
        queues = queues.filter(pk__in=list(queue_ids))
    return sum(queue_drain(queue_id=pk) for pk in queues.values_list("pk", flat=True))


def queue_positions_publish(*, queue_id: int) -> int:
    """Rule 5: live-chat customers waiting in a queue hear their position (from 2 on) and
    the average wait, when first queued and whenever either changes materially."""
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


WAIT_WINDOW = timedelta(hours=1)


def queue_wait_update(*, now: datetime | None = None) -> int:
    """Rule 5's figure: each queue's average wait, the mean time from start to first assignment
    of the conversations first assigned in the last hour (None when there were none), written
    where it changed, in one transaction. The minute beat asks for it (average_wait_task); the
    next drain of a queue tells its waiting customers a figure that moved materially
    (``queue_positions_publish``). Returns how many queues changed."""
    now = now or timezone.now()
    rows = (
        Conversation.objects.filter(first_assigned_at__gte=now - WAIT_WINDOW)
        .values("queue_id")
        .annotate(wait=Avg(ExpressionWrapper(F("first_assigned_at") - F("created_at"), output_field=DurationField())))
    )
    waits = {row["queue_id"]: int(row["wait"].total_seconds()) for row in rows if row["wait"] is not None}
    updated = 0
    with transaction.atomic():
        for queue_id, stored in Queue.objects.values_list("pk", "average_wait_seconds"):
            seconds = waits.get(queue_id)
            if seconds != stored:
                Queue.objects.filter(pk=queue_id).update(average_wait_seconds=seconds)
                updated += 1
    return updated


def _wait_changed(previous: int | None, minutes: int) -> bool:
    if previous is None:
        return True
    return abs(previous - minutes) >= max(2, previous // 4)
