"""Replies by email: POST /api/v1/inbound-email/ (docs/email.md). A mail to the reply address of
an email we sent becomes the customer's message with "channel": "email", through the engine; the
same mail twice is one message; a bad mail is a 202 "rejected" with its reason and stores nothing."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from conversations import emails, services
from conversations.models import Channel, Message, Sender, Status

pytestmark = pytest.mark.django_db

URL = "/api/v1/inbound-email/"
SECRET = "inbound-secret"
DOMAIN = "in.example.com"


@pytest.fixture(autouse=True)
def _inbound(settings):
    settings.INBOUND_EMAIL_DOMAIN = DOMAIN
    settings.INBOUND_EMAIL_SECRET = SECRET
    settings.INBOUND_EMAIL_MAX_BYTES = 64 * 1024


@pytest.fixture
def waiting(persistent, customer, alice, commit):
    """Carol's persistent conversation, answered by Alice and parked (waiting)."""
    customer.email = "carol@example.com"
    customer.save()
    with commit():  # pushed to Alice on commit
        conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    with commit():
        services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Which order?")
        services.conversation_wait(conversation_id=conversation.pk, agent=alice)
    conversation.refresh_from_db()
    return conversation


def mail(
    conversation,
    body="The order 1234.",
    *,
    sender="Carol <carol@example.com>",
    to=None,
    message_id="<reply-1@mail.example.net>",
    html=None,
    charset="utf-8",
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to or f"reply+{emails.reply_token(conversation)}@{DOMAIN}"
    message["Subject"] = "Re: New answer"
    if message_id:
        message["Message-ID"] = message_id
    if body is not None:
        message.set_content(body, charset=charset)
    if html is not None:
        if body is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    return bytes(message)


def post(api, raw: bytes, secret: str | None = SECRET):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    return api.post(URL, raw, content_type="message/rfc822", **headers)


REPLY_WITH_HISTORY = """Yes, the order 1234.

Thanks,
Carol

On Fri, 4 Dec 2026 at 10:00, Support <support@example.com> wrote:
> Which order?
>
> Reply to this email to answer.
"""


def test_a_reply_becomes_the_customers_email_message_without_quoted_history_and_returns_to_the_agent(
    api, waiting, alice, commit
):
    with commit():
        response = post(api, mail(waiting, REPLY_WITH_HISTORY))
    assert response.status_code == 202
    assert response.json()["status"] == "accepted" and response.json()["reason"] is None
    message = Message.objects.get(conversation=waiting, sender=Sender.CUSTOMER, channel=Channel.EMAIL)
    assert message.body.startswith("Yes, the order 1234.")
    assert "Which order?" not in message.body and "wrote:" not in message.body
    assert response.json()["seq"] == message.seq
    waiting.refresh_from_db()
    assert waiting.status == Status.ACTIVE and waiting.agent_id == alice.pk  # rule 7: back to Alice


def test_a_danish_reply_header_is_stripped_too(api, waiting):
    body = "Ordren 1234.\n\nDen fre. 4. dec. 2026 kl. 10.00 skrev Support <support@example.com>:\n> Hvilken ordre?\n"
    assert post(api, mail(waiting, body)).json()["status"] == "accepted"
    assert Message.objects.get(channel=Channel.EMAIL).body == "Ordren 1234."


def test_the_same_mail_posted_twice_is_one_message(api, waiting):
    first = post(api, mail(waiting)).json()
    second = post(api, mail(waiting)).json()
    assert first["status"] == second["status"] == "accepted"
    assert first["seq"] == second["seq"]
    assert Message.objects.filter(channel=Channel.EMAIL).count() == 1


def test_a_reply_to_a_closed_conversation_starts_a_new_one_answered_by_email(api, waiting, alice, commit):
    with commit():
        services.conversation_end(conversation_id=waiting.pk, agent=alice)
        services.conversation_close(conversation_id=waiting.pk, agent=alice)
        body = post(api, mail(waiting)).json()
    assert body["status"] == "accepted" and body["conversation_id"] != waiting.pk
    assert Message.objects.get(channel=Channel.EMAIL).conversation.started_offline


def _forged(conversation) -> str:
    token = emails.reply_token(conversation)
    return f"reply+{token[:-1]}{'a' if token[-1] != 'a' else 'b'}@{DOMAIN}"


def _other_conversations_token(conversation) -> str:
    """The token's MAC moved onto another conversation's id: a replay into another conversation."""
    mac = emails.reply_token(conversation).rpartition("-")[2]
    return f"reply+c{conversation.pk + 1}-k{conversation.customer_id}-{mac}@{DOMAIN}"


BAD_MAILS = {
    "forged token": (lambda c: mail(c, to=_forged(c)), "invalid_token"),
    "replayed to another conversation": (lambda c: mail(c, to=_other_conversations_token(c)), "invalid_token"),
    "not a reply address": (lambda c: mail(c, to=f"support@{DOMAIN}"), "unknown_recipient"),
    "another domain": (lambda c: mail(c, to=f"reply+{emails.reply_token(c)}@evil.example"), "unknown_recipient"),
    "someone else's From": (lambda c: mail(c, sender="mallory@example.com"), "sender_mismatch"),
    "oversized": (lambda c: mail(c, "x" * (70 * 1024)), "too_large"),
    "HTML only": (lambda c: mail(c, None, html="<p>The order 1234.</p>"), "html_only"),
    "not UTF-8": (lambda c: mail(c, "Ordren på 1234.", charset="iso-8859-1"), "unsupported_charset"),
    "no Message-ID": (lambda c: mail(c, message_id=None), "malformed"),
    "not a mail": (lambda c: b"\x00\xff\xfe garbage without headers", "malformed"),
    "no text": (lambda c: mail(c, " \n\n  \n"), "empty"),
    "longer than a message may be": (lambda c: mail(c, "y " * 2500), "body_too_long"),
}


@pytest.mark.parametrize("case", list(BAD_MAILS))
def test_a_bad_mail_is_rejected_with_its_reason_and_nothing_is_stored(api, waiting, case):
    make, reason = BAD_MAILS[case]
    before = Message.objects.count()
    response = post(api, make(waiting))
    assert response.status_code == 202
    assert response.json() == {"status": "rejected", "reason": reason}
    assert Message.objects.count() == before
    waiting.refresh_from_db()
    assert waiting.status == Status.WAITING


def test_an_automatic_reply_is_not_an_answer(api, waiting):
    raw = mail(waiting, "I am out of the office.").replace(b"Subject:", b"Auto-Submitted: auto-replied\nSubject:")
    assert post(api, raw).json() == {"status": "rejected", "reason": "auto_reply"}


@pytest.mark.parametrize(
    ("secret", "status", "code"), [(None, 401, "authentication_required"), ("wrong", 401, "invalid_token")]
)
def test_only_the_inbound_service_holding_the_secret_may_post(api, waiting, secret, status, code):
    response = post(api, mail(waiting), secret=secret)
    assert response.status_code == status and response.json()["code"] == code
    assert not Message.objects.filter(channel=Channel.EMAIL).exists()


def test_without_a_secret_configured_there_is_no_endpoint(api, waiting, settings):
    settings.INBOUND_EMAIL_SECRET = ""
    response = post(api, mail(waiting), secret="")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
