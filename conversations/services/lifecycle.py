"""A conversation's life after it started (docs/engine.md, "Statuses and transitions"): a
customer returning to a waiting conversation (rule 7), wait (the agent's ✖, rule 6), resume
(rule 8), end and close (rule 9), transfer (rule 10), and what supervisors and the minute sweep
do: force-close, auto-close (rule 11), the affinity timeout (rule 7).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from agents.models import Agent, Presence
from conversations import events, jobs
from conversations.errors import AgentUnavailable, CustomerCannotEnd, InvalidTransition, NotFound, ValidationFailed
from conversations.models import Conversation, Customer, EndedBy, Status
from conversations.selectors import capacity_used
from conversations.services.assignment import _activate, _agent_queue_ids, queues_drain_request
from conversations.services.common import (
    _check_agent,
    _locked,
    _locked_agent,
    _locked_mine,
    _move,
    _ongoing,
    _queue_changed,
    _save,
    _system,
)
from conversations.services.presence import agent_presence_sync
from conversations.sweeps import still_due
from workstreams.models import AutomatedMessageKind as Kind
from workstreams.models import ChatWidget, Queue

UNREACHABLE_PRESENCES = (Presence.OFFLINE, Presence.AWAY)


def _customer_returns(conversation: Conversation, now: datetime) -> None:
    """Rule 7: a persistent customer writes into a waiting conversation."""
    agent = conversation.agent
    conversation.waiting_since = None
    if conversation.workstream.keep_same_agent and agent and agent.presence not in UNREACHABLE_PRESENCES:
        _move(conversation, Status.ACTIVE)  # back to the same agent, even above capacity
        conversation.returned_at = now
        events.publish_notification(agent.pk, "customer_returned", conversation.pk)
        agent_presence_sync(agent_id=agent.pk, now=now)
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


def _after_capacity_freed(conversation: Conversation, agent_id: int | None, now: datetime) -> None:
    if agent_id:
        agent_presence_sync(agent_id=agent_id, now=now)
    queues_drain_request(queue_ids=[conversation.queue_id, *(_agent_queue_ids(agent_id) if agent_id else [])])


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
        agent_presence_sync(agent_id=agent.pk, now=now)
    return conversation


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


def conversation_close(*, conversation_id: int, agent: Agent, notes: str = "") -> Conversation:
    """Rule 9: the agent closes its wrap-up -> closed."""
    now = timezone.now()
    if not isinstance(notes, str) or len(notes) > 10_000 or "\x00" in notes:
        raise ValidationFailed("notes must be a string of at most 10,000 characters, without nulls")
    with transaction.atomic():
        conversation = _locked_mine(conversation_id, agent, Status.WRAP_UP)
        if conversation.workstream.label_required and not conversation.labels.exists():
            message = _("Give the conversation a label before closing it.")
            raise ValidationFailed(message, fields={"labels": message})
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
            agent_presence_sync(agent_id=target.pk, now=now)
        else:
            _system(conversation, now, Kind.TRANSFERRED, queue_name=to_queue.name)
            _requeue(conversation, queued_at=now, queue=to_queue)
            conversation.last_activity_at = now
            _save(conversation, previous_agent_id=previous)
            queues_drain_request(queue_ids=[to_queue.pk])
        if previous:
            _after_capacity_freed(conversation, previous, now)
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
