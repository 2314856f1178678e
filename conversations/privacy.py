"""Privacy requests: export everything stored about a customer, or erase it.

The service functions of privacy requests (docs/decisions.md, "Privacy requests: erasure
deletes"). Export reads; erasure closes the customer's ongoing conversations through the
engine (``services.conversation_force_close``: agents' capacity is freed and every socket
hears that the conversation ended), then deletes the customer with its conversations and
messages in one transaction, under the customer's row lock, so a message arriving meanwhile
cannot start a conversation that survives the erasure.

Both are audited on the ``omnichannel.audit`` logger with ids and counts only, never the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from conversations import files, services
from conversations.errors import ConversationsOngoing, NotFound, ValidationFailed
from conversations.models import Attachment, Conversation, Customer, Message, Status

audit = logging.getLogger("omnichannel.audit")

EXPORT_FORMAT = "omnichannel.customer-export"
EXPORT_VERSION = 1
LOOKUPS = ("id", "external_id", "email")


# --- Finding the customer ---------------------------------------------------------------------------


def customers_matching(identifier: str, *, by: str | None = None) -> list[Customer]:
    """The customers a privacy request names: by id, by external id (the JWT ``sub`` or the
    visitor id; one per authentication setting or widget, so possibly several), or by email
    (case-insensitive; a person may be a customer of several sites). Without ``by``, whichever
    of the three matches; when more than one kind matches different customers, the request is
    ambiguous and ``ValidationFailed`` asks for ``by``."""
    identifier = (identifier or "").strip()
    if not identifier or "\x00" in identifier:
        raise ValidationFailed("Name the customer by id, external id or email.")
    if by is not None and by not in LOOKUPS:
        raise ValidationFailed(f"by must be one of {', '.join(LOOKUPS)}")
    customers = Customer.objects.select_related("authentication_setting", "widget").order_by("pk")
    found: dict[str, list[Customer]] = {}
    if by in (None, "id") and identifier.isdigit() and len(identifier) < 19:
        found["id"] = list(customers.filter(pk=int(identifier)))
    elif by == "id":
        raise ValidationFailed("A customer id is a number.")
    if by in (None, "external_id"):
        found["external_id"] = list(customers.filter(external_id=identifier))
    if by in (None, "email") and "@" in identifier:
        found["email"] = list(customers.filter(email__iexact=identifier))
    kinds = {kind: matches for kind, matches in found.items() if matches}
    if not kinds:
        raise NotFound("No customer matches that id, external id or email.")
    if len({frozenset(c.pk for c in matches) for matches in kinds.values()}) > 1:
        described = "; ".join(f"{kind}: {', '.join(f'#{c.pk}' for c in matches)}" for kind, matches in kinds.items())
        raise ValidationFailed(f"Ambiguous: {described}. Say which with by=id, external_id or email.")
    return next(iter(kinds.values()))


# --- Export -----------------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _customer_data(customer: Customer) -> dict[str, Any]:
    setting, widget = customer.authentication_setting, customer.widget
    return {
        "id": customer.pk,
        "external_id": customer.external_id,
        "name": customer.display_name,
        "email": customer.email,
        "context": customer.context,
        "authenticated": customer.authenticated,
        "authentication_setting": {"id": setting.pk, "name": setting.name} if setting else None,
        "widget": {"id": widget.pk, "widget_key": widget.widget_key} if widget else None,
        "created_at": _iso(customer.created_at),
        "disconnected_at": _iso(customer.disconnected_at),
    }


def _message_data(message: Message) -> dict[str, Any]:
    return {
        "seq": message.seq,
        "internal": message.internal,  # an agent's note about the customer: stored about them too
        "sender": message.sender,
        "author": message.author,
        "kind": message.kind or None,
        "body": message.body,
        "client_id": message.client_id,
        "attachments": [summary["id"] for summary in message.attachments or ()],
        "created_at": _iso(message.created_at),
    }


def _attachment_data(attachment: Attachment) -> dict[str, Any]:
    """An uploaded file with its bytes (base64), sent in a message (``conversation_id``,
    ``message_seq``) or not (yet)."""
    return {
        "id": str(attachment.pk),
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "uploaded_by": attachment.sender,
        "conversation_id": attachment.conversation_id,
        "message_seq": attachment.message.seq if attachment.message_id else None,
        "created_at": _iso(attachment.created_at),
        "content_base64": files.content_base64(attachment.file.name),
    }


def _attachments_of(customer_id: int) -> QuerySet[Attachment]:
    """Every file uploaded by the customer or into its conversations."""
    return Attachment.objects.filter(Q(customer_id=customer_id) | Q(conversation__customer_id=customer_id))


def _conversation_data(conversation: Conversation) -> dict[str, Any]:
    agent = conversation.agent
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "mode": conversation.workstream.mode,
        "workstream": conversation.workstream.name,
        "queue": conversation.queue.name,
        "widget": conversation.widget.widget_key,
        "agent": agent.display_name if agent else None,
        "language": conversation.language,
        "created_at": _iso(conversation.created_at),
        "first_assigned_at": _iso(conversation.first_assigned_at),
        "ended_at": _iso(conversation.ended_at),
        "closed_at": _iso(conversation.closed_at),
        "ended_by": conversation.ended_by or None,
        "end_reason": conversation.end_reason or None,
        "wrap_up_notes": conversation.wrap_up_notes,
        "messages": [_message_data(m) for m in conversation.messages.order_by("seq")],
    }


def customers_export(*, customers: QuerySet[Customer] | list[Customer], actor: str) -> dict[str, Any]:
    """Everything stored about these customers, as one JSON-ready document: the customer
    records (with the claims their website sent: name, email, context variables), every
    conversation with its full history, wrap-up notes included, and every file uploaded by the
    customer or into its conversations, with its bytes."""
    ids = sorted({c.pk for c in customers})
    records = Customer.objects.filter(pk__in=ids).select_related("authentication_setting", "widget").order_by("pk")
    result = []
    conversations = messages = 0
    for customer in records:
        history = [
            _conversation_data(c)
            for c in customer.conversations.select_related("workstream", "queue", "widget", "agent__user")
            .prefetch_related("messages")
            .order_by("created_at", "pk")
        ]
        conversations += len(history)
        messages += sum(len(c["messages"]) for c in history)
        uploads = [
            _attachment_data(a) for a in _attachments_of(customer.pk).select_related("message").order_by("created_at")
        ]
        result.append({**_customer_data(customer), "conversations": history, "attachments": uploads})
    if len(result) != len(ids):
        raise NotFound("A customer of the request no longer exists.")
    audit.info(
        "privacy export: customers=%s conversations=%d messages=%d by=%s",
        ",".join(str(pk) for pk in ids),
        conversations,
        messages,
        actor,
    )
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "customers": result,
    }


# --- Erasure ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureResult:
    customer_id: int
    conversations: int
    messages: int
    closed: int  # ongoing conversations closed through the engine first


@dataclass(frozen=True)
class ErasurePlan:
    """What erasing a customer would remove (for the confirmation page and the command)."""

    customer: Customer
    conversations: int
    messages: int
    ongoing: list[int]


def erasure_plan(customer: Customer) -> ErasurePlan:
    counts = Conversation.objects.filter(customer=customer).aggregate(
        conversations=Count("pk", distinct=True), messages=Count("messages")
    )
    ongoing = list(customer.conversations.exclude(status=Status.CLOSED).order_by("pk").values_list("pk", flat=True))
    return ErasurePlan(customer, counts["conversations"], counts["messages"], ongoing)


def customer_erase(*, customer_id: int, actor: str, close_ongoing: bool = False) -> ErasureResult:
    """Delete a customer, its conversations and their messages, and every file uploaded by it
    or into its conversations (the rows now, the stored files once that is committed).

        A conversation that is not closed yet (open, active, waiting, wrap-up) is refused with
        ``ConversationsOngoing`` unless ``close_ongoing``: then each is force-closed through the
        engine first, in its own transaction, so its agent's capacity is freed and the customer's
        widget and the agents' inboxes hear that it ended. The deletion itself runs under the
        customer's row lock (the lock a first message takes to start a conversation) and checks
        again, so nothing the customer sends meanwhile survives the erasure half-done."""
    if not Customer.objects.filter(pk=customer_id).exists():
        raise NotFound("No such customer.")
    closed = 0
    if close_ongoing:
        for pk in _ongoing_ids(customer_id):
            services.conversation_force_close(conversation_id=pk, by_name="")
            closed += 1
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
        if customer is None:
            raise NotFound("No such customer.")
        ongoing = _ongoing_ids(customer_id)
        if ongoing:
            raise ConversationsOngoing(ongoing=ongoing)
        conversations = Conversation.objects.filter(customer_id=customer_id)
        conversation_count = conversations.count()
        stored = list(_attachments_of(customer_id).values_list("file", flat=True))
        _attachments_of(customer_id).delete()
        transaction.on_commit(lambda: files.delete_files(stored))
        message_count, _ = Message.objects.filter(conversation__customer_id=customer_id).delete()
        conversations.delete()
        customer.delete()
    audit.info(
        "privacy erase: customer=%d conversations=%d messages=%d closed_first=%d by=%s",
        customer_id,
        conversation_count,
        message_count,
        closed,
        actor,
    )
    return ErasureResult(customer_id, conversation_count, message_count, closed)


def _ongoing_ids(customer_id: int) -> list[int]:
    return list(
        Conversation.objects.filter(Q(customer_id=customer_id) & ~Q(status=Status.CLOSED))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
