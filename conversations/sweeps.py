"""Rule 11 and the affinity timeout: which conversations are due, as queries (for the
minute sweep) and as a check of one locked row (for the service that acts on it).

An offline message (``started_offline``: left outside operating hours, answered by email) waits in
the queue until an agent takes it and stays until the agent ends it: no open timeout, and its
customer, who never had a socket, is not "disconnected"."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from conversations.models import Conversation, Status
from workstreams.models import Workstream

DISCONNECT = "customer_disconnected"
REASONS = ("open_timeout", "waiting_timeout", "wrap_up_timeout", DISCONNECT)


def still_due(conversation: Conversation, reason: str, now: datetime) -> bool:
    workstream = conversation.workstream
    status = conversation.status
    if reason == "open_timeout":
        return (
            status == Status.OPEN
            and not conversation.started_offline
            and conversation.last_activity_at + workstream.open_timeout <= now
        )
    if reason == "waiting_timeout":
        return status == Status.WAITING and conversation.last_activity_at + workstream.waiting_timeout <= now
    if reason == "wrap_up_timeout":
        return status == Status.WRAP_UP and conversation.ended_at + workstream.wrap_up_timeout <= now
    if reason == DISCONNECT:
        customer = conversation.customer
        return (
            not workstream.persistent
            and not conversation.started_offline
            and status in (Status.OPEN, Status.ACTIVE)
            and customer.connection_count == 0
            and customer.disconnected_at is not None
            and customer.disconnected_at + workstream.disconnect_grace <= now
        )
    if reason == "affinity_timeout":
        return (
            status == Status.ACTIVE
            and conversation.returned_at is not None
            and conversation.returned_at + workstream.affinity_timeout <= now
        )
    raise ValueError(reason)


def due(now: datetime) -> list[tuple[int, str]]:
    """(conversation id, reason) pairs that are due now, per workstream's own periods."""
    found: list[tuple[int, str]] = []
    for ws in Workstream.objects.all():
        base = Conversation.objects.filter(workstream=ws)
        queries = {
            "open_timeout": base.filter(
                status=Status.OPEN, started_offline=False, last_activity_at__lte=now - ws.open_timeout
            ),
            "wrap_up_timeout": base.filter(status=Status.WRAP_UP, ended_at__lte=now - ws.wrap_up_timeout),
            "affinity_timeout": base.filter(status=Status.ACTIVE, returned_at__lte=now - ws.affinity_timeout),
        }
        if ws.persistent:
            queries["waiting_timeout"] = base.filter(
                status=Status.WAITING, last_activity_at__lte=now - ws.waiting_timeout
            )
        else:
            queries[DISCONNECT] = base.filter(
                Q(status=Status.OPEN) | Q(status=Status.ACTIVE),
                started_offline=False,
                customer__connection_count=0,
                customer__disconnected_at__lte=now - ws.disconnect_grace,
            )
        for reason, query in queries.items():
            found.extend((pk, reason) for pk in query.values_list("pk", flat=True).order_by("pk")[:1000])
    return found
