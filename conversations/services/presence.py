"""Presence and connections: an agent's chosen presence, the presence that follows capacity
(rule 13; conversations.policy.presence_for says which), and the customer: who a token stands
for (created on first sight, its claims kept up to date) and how many sockets it has open (the
live-chat disconnect grace of the sweep reads it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agents.models import Agent, Presence
from conversations import events
from conversations.errors import ValidationFailed
from conversations.models import Customer
from conversations.policy import AUTOMATIC_PRESENCES, presence_for
from conversations.selectors import capacity_used
from conversations.services.assignment import _agent_queue_ids, queues_drain_request
from conversations.services.common import _locked_agent
from workstreams.models import AuthenticationSetting, ChatWidget


class Identified(Protocol):
    """A row's primary key: a model instance, or what a socket keeps of one
    (conversations.realtime.CustomerRef)."""

    @property
    def pk(self) -> int: ...


def agent_presence_sync(*, agent_id: int, now: datetime | None = None) -> Agent:
    """Presence follows capacity unless the agent chose otherwise: free -> available,
    partly used -> busy, full -> busy_dnd."""
    now = now or timezone.now()
    agent = _locked_agent(agent_id)
    if agent.presence_auto and agent.presence in AUTOMATIC_PRESENCES:
        _follow_capacity(agent, capacity_used([agent.pk], now)[agent.pk], now)
    return agent


def _follow_capacity(agent: Agent, used: int, now: datetime) -> None:
    """``agent_presence_sync`` for an agent locked by the caller, who knows its capacity in use."""
    presence = presence_for(agent, used)
    if presence != agent.presence:
        agent.presence = presence
        agent.save(update_fields=["presence"])
        events.publish_agent(agent, now, used)


def agent_presence_set(*, agent: Agent, presence: str) -> Agent:
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
        locked = agent_presence_sync(agent_id=locked.pk, now=now)
        events.publish_agent(locked, now)
        queues_drain_request(queue_ids=_agent_queue_ids(locked.pk))
    return locked


def agent_profile_update(
    *,
    agent_id: int,
    presence: str,
    presence_auto: bool,
    capacity: int,
    queue_ids: Iterable[int] | None = None,
    email_notifications: bool | None = None,
) -> Agent:
    """An administrator edits an agent (the admin): its presence, whether presence follows
    capacity (rule 13), its capacity, unless None whether it is emailed what needs it while
    away, and unless ``queue_ids`` is None, the queues it works in.
    As when the agent chooses its presence in the inbox: presence then follows capacity if it
    does, the agent's sockets and the supervisors get the ``agent`` frame, and the agent's
    queues drain after the commit (rule 4) rather than at the next minute sweep. Nothing
    changed, nothing sent. Locks the agent row only (membership rows are not locked rows: an
    assignment batch that read the old membership assigns as it would have a moment before)."""
    if presence not in Presence.values:
        raise ValidationFailed(f"presence must be one of {', '.join(Presence.values)}")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise ValidationFailed("capacity must be a whole number, 0 or more")
    now = timezone.now()
    with transaction.atomic():
        agent = _locked_agent(agent_id)
        wanted = {"presence": presence, "presence_auto": presence_auto, "capacity": capacity}
        if email_notifications is not None:
            wanted["email_notifications"] = bool(email_notifications)
        changed = [field for field, value in wanted.items() if getattr(agent, field) != value]
        for field in changed:
            setattr(agent, field, wanted[field])
        if changed:
            agent.save(update_fields=changed)
        joined = left = set()
        if queue_ids is not None:
            before = set(_agent_queue_ids(agent.pk))
            after = {int(queue_id) for queue_id in queue_ids}
            joined, left = after - before, before - after
            if left:
                agent.queues.remove(*left)
            if joined:
                agent.queues.add(*joined)
        # The email preference is no part of the agent frame, the presence or the distribution.
        changed = [field for field in changed if field != "email_notifications"]
        if not (changed or joined or left):
            return agent
        agent = agent_presence_sync(agent_id=agent.pk, now=now)
        if changed:
            events.publish_agent(agent, now)
        queues_drain_request(queue_ids=_agent_queue_ids(agent.pk))
    return agent


def agent_presence_refresh(*, agent_id: int, drain: bool = True) -> Agent:
    """Capacity that frees by itself (a custom wrap-up block ending): presence follows it
    (rule 13), and the agent's queues drain (rule 4)."""
    now = timezone.now()
    with transaction.atomic():
        agent = agent_presence_sync(agent_id=agent_id, now=now)
        if drain:
            queues_drain_request(queue_ids=_agent_queue_ids(agent_id))
    return agent


def customer_upsert(
    *,
    external_id: str,
    setting: AuthenticationSetting | None = None,
    widget: ChatWidget | None = None,
    display_name: str | None = None,
    email: str | None = None,
    context: dict | None = None,
) -> Customer:
    """The customer a verified token stands for, created on first sight: ``external_id`` within
    the authentication ``setting`` (a JWT's ``sub``), or within the ``widget`` when there is no
    setting (a visitor). A value given (not None) that differs from the stored one is written;
    one left out keeps what is stored. Two first authentications at once make one customer (the
    unique constraints; the loser reads the winner's row). Nothing is locked: an authentication
    that changes nothing costs one SELECT."""
    if setting is None and widget is None:
        raise ValueError("a customer belongs to an authentication setting or, as a visitor, to a widget")
    lookup: dict = {"authentication_setting": setting, "external_id": external_id}
    if setting is None:
        lookup["widget"] = widget
    values = {
        field: value
        for field, value in (("display_name", display_name), ("email", email), ("context", context))
        if value is not None
    }
    customer = Customer.objects.filter(**lookup).first()
    if customer is None:
        try:
            with transaction.atomic():
                return Customer.objects.create(**lookup, **values)
        except IntegrityError:  # created meanwhile by another authentication
            customer = Customer.objects.get(**lookup)
    changed = [field for field, value in values.items() if getattr(customer, field) != value]
    if changed:
        for field in changed:
            setattr(customer, field, values[field])
        customer.save(update_fields=changed)
    return customer


def agent_inbox_open(*, agent_id: int) -> None:
    """An inbox page of the agent's opened (its session socket is ready): while one is open, the
    agent is not emailed what needs them (``agent_notices_email``)."""
    Agent.objects.filter(pk=agent_id).update(inbox_connections=F("inbox_connections") + 1)


def agent_inbox_close(*, agent_id: int, now: datetime | None = None) -> None:
    """An inbox page of the agent's closed; when it was the last one, what happens from now on
    may be emailed to them."""
    now = now or timezone.now()
    with transaction.atomic():
        agent = Agent.objects.select_for_update().filter(pk=agent_id).only("inbox_connections").first()
        if agent is None:
            return
        count = max(agent.inbox_connections - 1, 0)
        Agent.objects.filter(pk=agent_id).update(
            inbox_connections=count, **({"inbox_left_at": now} if count == 0 else {})
        )


def customer_connect(*, customer: Customer | Identified) -> None:
    with transaction.atomic():
        locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if locked is None:  # erased meanwhile (conversations.privacy)
            return
        locked.connection_count += 1
        locked.disconnected_at = None
        locked.save(update_fields=["connection_count", "disconnected_at"])


def customer_disconnect(*, customer: Customer | Identified) -> None:
    with transaction.atomic():
        locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if locked is None:  # erased while connected: nothing left to record
            return
        locked.connection_count = max(locked.connection_count - 1, 0)
        if locked.connection_count == 0:
            locked.disconnected_at = timezone.now()
        locked.save(update_fields=["connection_count", "disconnected_at"])
