"""Emails to customers and agents: what they say, where replies go, and how they leave.

The engine (conversations.services.continuity) decides that an email goes out and writes it, in
the transaction of that decision, as an ``OutboundEmail`` row (the outbox): composed here, in
the conversation's language, with a plain-text and an HTML part. After the commit a Celery task
sends it (``outbound_send``); the email sweep (conversations.tasks.emails_task) sends what a
lost task or a failing mail server left behind, with backoff. A row is sent once: the sender
locks it and marks it sent.

A reply to a customer's email goes to ``reply+<token>@INBOUND_EMAIL_DOMAIN``; the token names
the conversation and the customer and is signed (``reply_token``/``reply_token_read``), so a
mail posted to /api/v1/inbound-email/ (conversations.inbound) lands in that conversation only.
The unsubscribe link is signed the same way (``unsubscribe_token``).
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac

from conversations.errors import RateLimited
from conversations.models import Conversation, Customer, EmailKind, Message, OutboundEmail
from omnichannel import ratelimit

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
_REPLY_SALT = "omnichannel.emails.reply"
_UNSUBSCRIBE_SALT = "omnichannel.emails.unsubscribe"
_TOKEN = re.compile(r"^c(?P<conversation>[1-9][0-9]{0,17})-k(?P<customer>[1-9][0-9]{0,17})-(?P<mac>[a-z2-7]{26})$")


# --- Tokens --------------------------------------------------------------------------------------


def _secret() -> str:
    return settings.INBOUND_EMAIL_SECRET or settings.SECRET_KEY


def _mac(conversation_id: int, customer_id: int) -> str:
    digest = salted_hmac(_REPLY_SALT, f"{conversation_id}:{customer_id}", secret=_secret(), algorithm="sha256")
    return base64.b32encode(digest.digest()).decode()[:26].lower()


def reply_token(conversation: Conversation) -> str:
    """``c<conversation>-k<customer>-<mac>``: lower case (mail servers may fold the local part's
    case), 130 bits of HMAC-SHA256, short enough for a local part (64 characters)."""
    return f"c{conversation.pk}-k{conversation.customer_id}-{_mac(conversation.pk, conversation.customer_id)}"


@dataclass(frozen=True)
class ReplyTo:
    conversation_id: int
    customer_id: int


def reply_token_read(token: str) -> ReplyTo | None:
    """The conversation and customer a reply token names, or None when it is not one we signed."""
    match = _TOKEN.match(token.lower())
    if match is None:
        return None
    conversation_id, customer_id = int(match["conversation"]), int(match["customer"])
    if not hmac.compare_digest(match["mac"], _mac(conversation_id, customer_id)):
        return None
    return ReplyTo(conversation_id, customer_id)


def reply_address(conversation: Conversation) -> str | None:
    """Where the customer's reply goes; None when no inbound domain is configured."""
    if not settings.INBOUND_EMAIL_DOMAIN:
        return None
    return f"reply+{reply_token(conversation)}@{settings.INBOUND_EMAIL_DOMAIN}"


def unsubscribe_token(customer: Customer) -> str:
    return signing.dumps(customer.pk, salt=_UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_token_read(token: str) -> int | None:
    try:
        customer_id = signing.loads(token, salt=_UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    return customer_id if isinstance(customer_id, int) else None


def unsubscribe_url(customer: Customer) -> str:
    return settings.SITE_URL + reverse("email-unsubscribe", args=[unsubscribe_token(customer)])


# --- Composing ----------------------------------------------------------------------------------


def _message_id() -> str:
    domain = settings.EMAIL_MESSAGE_ID_DOMAIN or settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
    return make_msgid(domain=domain.strip(">"))


def page_url(conversation: Conversation) -> str:
    """The website page that hosts the widget (``ChatWidget.page_url``), else its demo page here."""
    widget = conversation.widget
    return widget.page_url or settings.SITE_URL + reverse("widget-demo", args=[widget.widget_key])


def _render(template: str, language: str, context: dict) -> tuple[str, str, str]:
    """(subject, text, html) of templates/emails/<template>.{subject.txt,txt,html}."""
    with translation.override(language):
        subject = " ".join(render_to_string(f"emails/{template}.subject.txt", context).split())
        text = render_to_string(f"emails/{template}.txt", context)
        html = render_to_string(f"emails/{template}.html", context)
    return subject, text, html


def _previous_message_id(conversation: Conversation) -> str | None:
    """The last email of this conversation to the customer, so mail clients thread them."""
    return (
        OutboundEmail.objects.filter(conversation=conversation, customer=conversation.customer_id)
        .order_by("-created_at", "-pk")
        .values_list("message_id", flat=True)
        .first()
    )


def customer_email(
    conversation: Conversation, messages: list[Message], *, kind: str, to: str, now: datetime
) -> OutboundEmail:
    """An unsaved email to the customer of ``conversation`` with ``messages``: unread replies or
    an answer to an offline message (``kind``), or a transcript (to any address)."""
    customer = conversation.customer
    reply_to = reply_address(conversation) if kind != EmailKind.TRANSCRIPT else None
    context = {
        "conversation": conversation,
        "customer": customer,
        "messages": messages,
        "widget": conversation.widget,
        "page_url": page_url(conversation),
        "reply_by_email": reply_to is not None,
        "unsubscribe_url": unsubscribe_url(customer) if kind != EmailKind.TRANSCRIPT else None,
    }
    template = "transcript" if kind == EmailKind.TRANSCRIPT else "unread_replies"
    subject, text, html = _render(template, conversation.language, context)
    headers = {}
    if reply_to:
        headers["Reply-To"] = reply_to
    if context["unsubscribe_url"]:
        headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    headers["Auto-Submitted"] = "auto-generated" if kind == EmailKind.TRANSCRIPT else "auto-replied"
    previous = _previous_message_id(conversation) if kind != EmailKind.TRANSCRIPT else None
    if previous:
        headers["In-Reply-To"] = previous
        headers["References"] = previous
    return OutboundEmail(
        kind=kind,
        conversation=conversation,
        customer=customer if kind != EmailKind.TRANSCRIPT else None,
        to=to,
        subject=subject,
        body_text=text,
        body_html=html,
        headers=headers,
        message_id=_message_id(),
        first_seq=messages[0].seq if messages else None,
        last_seq=messages[-1].seq if messages else None,
        created_at=now,
    )


def agent_email(agent, notices: list[tuple[Conversation, bool]], *, now: datetime) -> OutboundEmail:
    """An unsaved email to an agent listing what needs them while they had no inbox open:
    ``(conversation, returned)`` pairs, a conversation assigned to them or (``returned``) whose
    customer came back to them (conversations.selectors.agent_notices)."""
    items = [
        {
            "customer": str(conversation.customer),
            "returned": returned,
            "url": settings.SITE_URL + reverse("agents:conversation", args=[conversation.pk]),
        }
        for conversation, returned in notices
    ]
    context = {
        "agent": agent,
        "items": items,
        "inbox_url": settings.SITE_URL + reverse("agents:inbox"),
        "count": len(items),
    }
    subject, text, html = _render("agent_notices", settings.LANGUAGE_CODE, context)
    return OutboundEmail(
        kind=EmailKind.AGENT_NOTICES,
        agent=agent,
        to=agent.user.email,
        subject=subject,
        body_text=text,
        body_html=html,
        headers={"Auto-Submitted": "auto-generated"},
        message_id=_message_id(),
        created_at=now,
    )


# --- Transcripts on request --------------------------------------------------------------------

CUSTOMER_TRANSCRIPTS_PER_HOUR = 5
AGENT_TRANSCRIPTS_PER_HOUR = 30


def transcript_allowed(key: str, limit: int) -> None:
    """At most ``limit`` transcripts an hour per customer or agent (``key``), an email to any
    address each: else ``RateLimited``."""
    if not ratelimit.allow(f"transcript:{key}", limit, 3600):
        raise RateLimited(retry_after=round(ratelimit.retry_after(f"transcript:{key}", 3600)))


# --- Sending ------------------------------------------------------------------------------------


def outbound_send(email_id: int) -> bool:
    """Send one stored email unless it is sent or another process is sending it. A failure is
    recorded and retried later (``unsent_due``), ``MAX_ATTEMPTS`` times at most. True when sent."""
    now = timezone.now()
    with transaction.atomic():
        email = (
            OutboundEmail.objects.select_for_update(skip_locked=True)
            .filter(pk=email_id, sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
            .first()
        )
        if email is None:
            return False
        message = EmailMultiAlternatives(
            subject=email.subject,
            body=email.body_text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[email.to],
            headers={**email.headers, "Message-ID": email.message_id},
        )
        if email.body_html:
            message.attach_alternative(email.body_html, "text/html")
        email.attempts += 1
        try:
            message.send()
        except (OSError, ValueError) as error:  # smtplib's errors are OSErrors; a refused address a ValueError
            email.last_error = f"{type(error).__name__}: {error}"[:2000]
            email.next_attempt_at = now + timedelta(minutes=2 ** min(email.attempts, 10))
            email.save(update_fields=["attempts", "last_error", "next_attempt_at"])
            logger.warning("email %s to %s not sent (attempt %s): %s", email.pk, email.to, email.attempts, error)
            return False
        email.sent_at = now
        email.last_error = ""
        email.save(update_fields=["attempts", "sent_at", "last_error"])
    return True


def unsent_due(now: datetime, limit: int = 100) -> list[int]:
    """Stored emails not sent yet whose next attempt is due (a lost task, a failing server)."""
    return list(
        OutboundEmail.objects.filter(sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
