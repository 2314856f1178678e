"""Celery tasks: small, idempotent, fetch by id, call the engine."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import task_postrun
from django.db.models import Avg, DurationField, ExpressionWrapper, F
from django.utils import timezone

from agents.models import Agent, Presence
from conversations import events, services, sweeps
from conversations.models import Conversation
from workstreams.models import Queue

logger = logging.getLogger(__name__)


@task_postrun.connect
def send_the_tasks_frames(**_kwargs) -> None:
    """A task's frames go out in batches while it runs (conversations.events); it is not done
    until they are sent."""
    events.flush()


@shared_task(acks_late=True)
def presence_refresh_task(agent_id: int) -> None:
    services.agent_presence_refresh(agent_id=agent_id)


@shared_task(acks_late=True)
def drain_queues_task(queue_ids: list[int] | None = None) -> int:
    return services.queues_drain(queue_ids=queue_ids)


@shared_task(acks_late=True)
def sweep_task() -> dict[str, int]:
    """Every minute: auto-close (rule 11), affinity timeouts (rule 7), presence of agents whose
    capacity freed by itself (custom wrap-up blocks ending, capacity raised in the admin), then
    drain all queues (that capacity, operating hours opening, lost enqueues)."""
    counts: dict[str, int] = {}
    for conversation_id, reason in sweeps.due(timezone.now()):
        try:
            if reason == "affinity_timeout":
                done = services.conversation_affinity_expire(conversation_id=conversation_id)
            else:
                done = services.conversation_auto_close(conversation_id=conversation_id, reason=reason)
        except Exception:
            logger.exception("sweep failed for conversation %s (%s)", conversation_id, reason)
            continue
        if done is not None:
            counts[reason] = counts.get(reason, 0) + 1
    loaded = Agent.objects.filter(presence_auto=True, presence__in=[Presence.BUSY, Presence.BUSY_DND])
    for agent_id in loaded.values_list("pk", flat=True):
        try:
            services.agent_presence_refresh(agent_id=agent_id, drain=False)
        except Exception:
            logger.exception("sweep could not refresh the presence of agent %s", agent_id)
    counts["assigned"] = services.queues_drain()
    return counts


@shared_task(acks_late=True)
def average_wait_task() -> int:
    """Recompute each queue's average wait from the last hour's first assignments."""
    since = timezone.now() - timedelta(hours=1)
    rows = (
        Conversation.objects.filter(first_assigned_at__gte=since)
        .values("queue_id")
        .annotate(wait=Avg(ExpressionWrapper(F("first_assigned_at") - F("created_at"), output_field=DurationField())))
    )
    waits = {row["queue_id"]: row["wait"] for row in rows}
    updated = 0
    for queue in Queue.objects.all():
        wait = waits.get(queue.pk)
        seconds = int(wait.total_seconds()) if wait is not None else None
        if seconds != queue.average_wait_seconds:
            Queue.objects.filter(pk=queue.pk).update(average_wait_seconds=seconds)
            updated += 1
    return updated
