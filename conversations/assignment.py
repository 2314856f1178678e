"""Push assignment (rule 2): queues in priority order, each first in first out, to the
eligible agent chosen by the workstream's method, under row locks so that concurrent
workers never over-assign an agent or assign a conversation twice.

Lock order everywhere: conversation, then queue (round robin), then agent."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from conversations import services
from conversations.models import Conversation, Status
from conversations.selectors import capacity_used
from workstreams.models import AssignmentMethod, DistributionMode, Queue

logger = logging.getLogger(__name__)


def eligible_agent_ids(conversation: Conversation, now: datetime) -> list[int]:
    """Agents of the conversation's queue, in an allowed presence, with enough free
    capacity, best first by the workstream's assignment method (before locking)."""
    workstream = conversation.workstream
    agents = list(
        Agent.objects.filter(queues=conversation.queue_id, presence__in=workstream.allowed_presences).values_list(
            "pk", "capacity", "last_assigned_at"
        )
    )
    used = capacity_used([pk for pk, _, _ in agents], now)
    free = [(pk, capacity - used[pk], last) for pk, capacity, last in agents]
    free = [row for row in free if row[1] >= workstream.capacity_units]
    if workstream.assignment_method == AssignmentMethod.ROUND_ROBIN:
        cursor = conversation.queue.round_robin_cursor or 0
        ordered = sorted(row[0] for row in free)
        return [pk for pk in ordered if pk > cursor] + [pk for pk in ordered if pk <= cursor]
    # Highest available capacity; ties to the agent assigned least recently (never first).
    free.sort(key=lambda row: (-row[1], row[2] is not None, row[2] or now, row[0]))
    return [row[0] for row in free]


def _lock_if_still_eligible(agent_id: int, conversation: Conversation, now: datetime) -> Agent | None:
    agent = Agent.objects.select_for_update(of=("self",)).select_related("user").get(pk=agent_id)
    workstream = conversation.workstream
    if agent.presence not in workstream.allowed_presences:
        return None
    if not agent.queues.filter(pk=conversation.queue_id).exists():
        return None
    if agent.capacity - capacity_used([agent.pk], now)[agent.pk] < workstream.capacity_units:
        return None
    return agent


def assign_next(queue_id: int, *, skip_workstreams: set[int]) -> tuple[bool, int | None]:
    """Assign the first conversation of the queue that can be assigned now.

    Returns (assigned, blocked_workstream_id): ``(False, ws)`` when the head conversation of
    workstream ``ws`` has no eligible agent (its followers have none either), ``(False, None)``
    when nothing is left to try."""
    now = timezone.now()
    with transaction.atomic():
        line = (
            Conversation.objects.select_related("workstream", "queue", "customer", "widget", "agent__user")
            .filter(queue_id=queue_id, status=Status.OPEN, workstream__distribution_mode=DistributionMode.PUSH)
            .exclude(workstream_id__in=skip_workstreams)
            .order_by("queued_at", "pk")
        )
        # Skip rows another worker is assigning, so concurrent drains work side by side...
        conversation = line.select_for_update(of=("self",), skip_locked=True).first()
        if conversation is None:
            # ...but when only locked rows are left (a customer writing into one, another
            # worker assigning it), wait for them rather than leave them to the minute sweep.
            # PostgreSQL re-checks the row after the wait, so one assigned meanwhile drops out.
            conversation = line.select_for_update(of=("self",)).first()
        if conversation is None:
            return False, None
        if not conversation.queue.is_open(now):
            return False, None
        round_robin = conversation.workstream.assignment_method == AssignmentMethod.ROUND_ROBIN
        # One assignment per queue at a time: a second worker waits here, then ranks the agents
        # with the first one's assignment counted (otherwise both would pick the same "most
        # free" agent). The agent row locks alone only prevent going over capacity.
        conversation.queue = Queue.objects.select_for_update().get(pk=queue_id)
        for agent_id in eligible_agent_ids(conversation, now):
            agent = _lock_if_still_eligible(agent_id, conversation, now)
            if agent is None:
                continue
            services.conversation_assign_locked(conversation, agent, now)
            if round_robin:
                Queue.objects.filter(pk=queue_id).update(round_robin_cursor=agent.pk)
            return True, None
        return False, conversation.workstream_id


def drain_queue(queue_id: int, *, limit: int = 10_000) -> int:
    """Assign as many waiting conversations of one queue as agents can take."""
    assigned = 0
    blocked: set[int] = set()
    while assigned < limit:
        done, blocked_workstream = assign_next(queue_id, skip_workstreams=blocked)
        if done:
            assigned += 1
            continue
        if blocked_workstream is None:
            break
        blocked.add(blocked_workstream)
    if assigned or blocked:
        services.queue_positions_notify(queue_id=queue_id)
    return assigned


def drain_queues(queue_ids: Iterable[int] | None = None) -> int:
    """Drain queues in priority order (all queues when ``queue_ids`` is None)."""
    queues = Queue.objects.order_by("priority", "pk")
    if queue_ids is not None:
        queues = queues.filter(pk__in=list(queue_ids))
    return sum(drain_queue(pk) for pk in queues.values_list("pk", flat=True))
