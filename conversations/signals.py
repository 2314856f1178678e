"""Configuration changes that free capacity for a queue: an agent joins it (rule 4)."""

from __future__ import annotations

from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from conversations.services import queues_drain_request
from workstreams.models import Queue


@receiver(m2m_changed, sender=Queue.agents.through, dispatch_uid="drain_on_queue_membership")
def drain_when_agents_join_a_queue(sender, instance, action, reverse, pk_set, **kwargs):
    if action != "post_add" or not pk_set:
        return
    # Forward: instance is the queue; reverse (agent.queues.add): pk_set holds queue ids.
    queues_drain_request(queue_ids=pk_set if reverse else [instance.pk])
