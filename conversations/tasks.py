"""Celery tasks: small, idempotent, fetch by id, call the engine."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import task_postrun
from django.conf import settings
from django.utils import timezone

from agents.models import Agent, Presence
from conversations import emails, events, selectors, services, sweeps

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
    capacity freed by itself (custom wrap-up blocks ending), then drain all queues (that
    capacity, operating hours opening, lost enqueues, membership changed outside the admin)."""
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
    """Every minute: each queue's average wait (rule 5)."""
    return services.queue_wait_update()


@shared_task(acks_late=True)
def email_send_task(email_id: int) -> bool:
    """Send one stored email (conversations.emails.outbound_send): sent once, whoever asks."""
    return emails.outbound_send(email_id)


@shared_task(acks_late=True)
def emails_task() -> dict[str, int]:
    """Every EMAIL_SWEEP_INTERVAL seconds: the answers that did not reach their customers go by
    email once due (docs/email.md), and stored emails whose task was lost or whose mail server
    failed are tried again; agents with no inbox open are emailed what needs them."""
    now = timezone.now()
    counts = {"unread_replies": 0, "agent_notices": 0, "sent": 0}
    for conversation_id in selectors.unread_replies_due(now):
        try:
            if services.conversation_unread_replies_email(conversation_id=conversation_id, now=now):
                counts["unread_replies"] += 1
        except Exception:
            logger.exception("could not email the unread replies of conversation %s", conversation_id)
    for agent_id in selectors.agent_notices_due(now, timedelta(seconds=settings.AGENT_NOTICE_DELAY)):
        try:
            if services.agent_notices_email(agent_id=agent_id, now=now):
                counts["agent_notices"] += 1
        except Exception:
            logger.exception("could not email agent %s what needs them", agent_id)
    for email_id in emails.unsent_due(now):
        counts["sent"] += emails.outbound_send(email_id)
    return counts


@shared_task(acks_late=True)
def attachments_sweep_task() -> int:
    """Hourly: remove uploads no message took within ATTACHMENT_ORPHAN_AGE (rows and files)."""
    return services.attachments_sweep()
