"""Beyond the tab: what reaches a customer who is not on the page, and what the customer sends
from outside it (docs/email.md).

- ``conversation_unread_replies_email``: the agent's answers that did not reach the customer go
  by email, batched, once (``Conversation.emailed_seq``), written to the outbox in the same
  transaction (conversations.emails);
- ``customer_email_reply``: a reply by email becomes the customer's message, through the same
  service as a widget's message (``customer_message_send``), keyed by its ``Message-ID``;
- ``conversation_transcript_email``: the messages the customer saw, to an address;
- ``customer_offline_message``: live chat outside operating hours: a conversation in the queue,
  answered by email;
- ``customer_messages_fetched``, ``customer_email_unsubscribe``: what the customer has seen, and
  the unsubscribe link;
- ``agent_notices_email``: an agent with no inbox open is emailed, batched, what needs them.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from conversations import jobs
from conversations.emails import agent_email, customer_email
from conversations.errors import NotFound, SenderMismatch, ValidationFailed
from conversations.models import Channel, Conversation, Customer, EmailKind, OutboundEmail
from conversations.selectors import agent_notices, customer_visible_messages, unread_replies
from conversations.services.messages import SendResult, customer_message_send
from workstreams.models import ChatWidget

# A stored email's first attempt is its task's, after the commit; the email sweep tries again
# only after this, so the two do not race for a row that is on its way.
FIRST_RETRY_AFTER = timedelta(minutes=1)


def _outbox(email: OutboundEmail, now: datetime) -> OutboundEmail:
    """Store the email with the change it belongs to, and send it after the commit."""
    email.next_attempt_at = now + FIRST_RETRY_AFTER
    email.save(force_insert=True)
    jobs.email_send_on_commit(email.pk)
    return email


def _locked(conversation_id: int) -> Conversation | None:
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("customer", "widget", "workstream")
        .filter(pk=conversation_id)
        .first()
    )


def conversation_unread_replies_email(*, conversation_id: int, now: datetime | None = None) -> OutboundEmail | None:
    """One email with every answer of the agent that has not reached the customer, when the first
    of them is due (conversations.selectors.unread_replies); never twice for the same message.
    None when nothing is due."""
    now = now or timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation is None:
            return None
        answers = unread_replies(conversation, now)
        if not answers:
            return None
        kind = EmailKind.OFFLINE_ANSWER if conversation.started_offline else EmailKind.UNREAD_REPLIES
        email = customer_email(conversation, answers, kind=kind, to=conversation.customer.email, now=now)
        conversation.emailed_seq = answers[-1].seq
        conversation.save(update_fields=["emailed_seq"])
        return _outbox(email, now)


def customer_email_reply(
    *, conversation_id: int, customer_id: int, sender: str, body: str, message_id: str
) -> SendResult:
    """The customer's reply by email (its new text, conversations.inbound) as the customer's
    message of that conversation's widget, with ``"channel": "email"``: into the ongoing
    conversation (a waiting persistent one returns to its agent), or a new one, answered by
    email when the customer is not on the page. The same ``Message-ID`` again returns the
    stored message. ``NotFound``: no such conversation of that customer; ``SenderMismatch``:
    ``sender`` is not the customer's address."""
    conversation = (
        Conversation.objects.select_related("widget__workstream", "customer")
        .filter(pk=conversation_id, customer_id=customer_id)
        .first()
    )
    if conversation is None:
        raise NotFound()
    customer = conversation.customer
    if not customer.email or customer.email.casefold() != sender.casefold():
        raise SenderMismatch()
    client_id = "email:" + hashlib.sha256(message_id.encode()).hexdigest()[:40]
    return customer_message_send(
        widget=conversation.widget,
        customer=customer,
        body=body,
        client_id=client_id,
        channel=Channel.EMAIL,
        offline=True,
    )


def conversation_transcript_email(*, conversation_id: int, to: str, now: datetime | None = None) -> OutboundEmail:
    """The messages the customer of the conversation saw, to ``to``."""
    now = now or timezone.now()
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation is None:
            raise NotFound()
        messages = list(customer_visible_messages(conversation.pk))
        email = customer_email(conversation, messages, kind=EmailKind.TRANSCRIPT, to=to, now=now)
        return _outbox(email, now)


def customer_offline_message(
    *, widget: ChatWidget, customer: Customer | None, name: str, email: str, body: object
) -> SendResult:
    """A message left with the offline form (live chat outside operating hours, or a customer who
    will not wait): the customer's name and email are kept, and the message starts a
    conversation in the queue (or joins the ongoing one) that an agent answers by email.
    ``customer`` None: a visitor of an anonymous widget who has no token yet, created with the
    message (and not at all when the message is refused)."""
    if not email:
        raise ValidationFailed("email is required")
    with transaction.atomic():
        if customer is None:
            if widget.authentication_setting_id is not None:
                raise ValueError("a signed-in widget's customer comes from its token")
            customer = Customer.objects.create(
                widget=widget, external_id=f"offline-{uuid.uuid4().hex}", display_name=name, email=email
            )
        changed = []
        if name and customer.display_name != name:
            customer.display_name = name
            changed.append("display_name")
        if customer.email != email:
            customer.email = email
            changed.append("email")
        if customer.email_unsubscribed_at is not None:  # asking for an answer by email asks for email again
            customer.email_unsubscribed_at = None
            changed.append("email_unsubscribed_at")
        if changed:
            customer.save(update_fields=changed)
        return customer_message_send(widget=widget, customer=customer, body=body, offline=True)


def customer_messages_fetched(*, customer: Customer, now: datetime | None = None) -> None:
    """The customer read the conversation over REST: what was written before now has reached it."""
    Customer.objects.filter(pk=customer.pk).update(fetched_at=now or timezone.now())


def customer_email_unsubscribe(*, customer_id: int, now: datetime | None = None) -> bool:
    """No more unread replies by email for this customer (the unsubscribe link), from the first
    time it is followed. False when the customer is gone."""
    if Customer.objects.filter(pk=customer_id, email_unsubscribed_at__isnull=True).update(
        email_unsubscribed_at=now or timezone.now()
    ):
        return True
    return Customer.objects.filter(pk=customer_id).exists()


def agent_notices_email(*, agent_id: int, now: datetime | None = None) -> OutboundEmail | None:
    """One email to an agent who has no inbox open and wants it, with every conversation assigned
    to them or whose customer came back to them since their last inbox closed and their last such
    email (conversations.selectors.agent_notices); each listed once. None when there is nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        agent = Agent.objects.select_for_update(of=("self",)).select_related("user").filter(pk=agent_id).first()
        if agent is None or not agent.email_notifications or agent.inbox_connections or not agent.user.email:
            return None
        notices = agent_notices(agent, now)
        if not notices:
            return None
        email = agent_email(agent, notices, now=now)
        agent.noticed_at = now
        agent.save(update_fields=["noticed_at"])
        return _outbox(email, now)
