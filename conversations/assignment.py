"""Push assignment (rule 2): queues in priority order, each first in first out, to the
eligible agent chosen by the workstream's method, under row locks so that concurrent
workers never over-assign an agent or assign a conversation twice.

Lock order everywhere: conversation, then queue (round robin), then agent."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from conversations import services
from conversations.models import Conversation, Status
from conversations.policy import rank_agents
from conversations.selectors import capacity_used
from workstreams.models import AssignmentMethod, DistributionMode, Queue

logger = logging.getLogger(__name__)


BATCH = 50  # conversations assigned per transaction


def assign_batch(queue_id: int, *, skip_workstreams: set[int], size: int = BATCH) -> tuple[int, set[int], int]:
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
            services.conversations_assign_locked(pairs, now, used)
            if cursor != (queue.round_robin_cursor or 0):
                Queue.objects.filter(pk=queue_id).update(round_robin_cursor=cursor)
    return len(pairs), blocked, len(conversations)


def drain_queue(queue_id: int, *, limit: int = 10_000) -> int:
    """Assign as many waiting conversations of one queue as agents can take."""
    assigned = 0
    blocked: set[int] = set()
    while assigned < limit:
        done, newly_blocked, looked_at = assign_batch(
            queue_id, skip_workstreams=blocked, size=min(BATCH, limit - assigned)
        )
        assigned += done
        blocked |= newly_blocked
        if not looked_at or not (done or newly_blocked):
            break
    if assigned or blocked:
        services.queue_positions_notify(queue_id=queue_id)
    return assigned


def drain_queues(queue_ids: Iterable[int] | None = None) -> int:
    """Drain queues in priority order (all queues when ``queue_ids`` is None)."""
    queues = Queue.objects.order_by("priority", "pk")
    if queue_ids is not None:
        queues = queues.filter(pk__in=list(queue_ids))
    return sum(drain_queue(pk) for pk in queues.values_list("pk", flat=True))
