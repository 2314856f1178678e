"""Unread answers by email (docs/email.md): an agent's answer that reached no socket and no REST
fetch of the customer within the workstream's ``email_unread_after`` goes, with every other such
answer, in one email; never twice; through a real SMTP server; retried when the server fails."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from conversations import emails, services
from conversations.models import Channel, Conversation, EmailKind, OutboundEmail, Status
from conversations.tasks import emails_task
from tests.cast import alice, commit, customer, eager_celery, persistent, queue  # noqa: F401 - fixtures
from tests.smtp import html_of, smtp_server, text_of  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

DELAY = timedelta(minutes=5)


@pytest.fixture(autouse=True)
def _email_settings(settings):
    settings.INBOUND_EMAIL_DOMAIN = "in.example.com"
    settings.INBOUND_EMAIL_SECRET = "inbound-secret"
    settings.SITE_URL = "https://chat.example.com"
    settings.DEFAULT_FROM_EMAIL = "Support <support@example.com>"


@pytest.fixture
def answered(persistent, customer, alice):
    """Carol wrote and left; Alice answered twice (from her inbox: no email to her about it)."""
    services.agent_inbox_open(agent_id=alice.pk)
    customer.email = "carol@example.com"
    customer.save()
    persistent.page_url = "https://shop.example.com/help"
    persistent.save()
    services.customer_connect(customer=customer)
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Where is my parcel?")
    conversation = conversation.conversation
    conversation.refresh_from_db()
    assert conversation.agent_id == alice.pk  # pushed to Alice on commit
    services.customer_disconnect(customer=customer)
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="It left the warehouse today.")
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Tracking: <b>XY123</b>")
    return conversation


def later(delta: timedelta):
    return time_machine.travel(timezone.now() + delta, tick=False)


def test_unread_answers_go_in_one_email_after_the_delay_with_both_parts_a_reply_address_and_links(
    answered, smtp_server
):
    with later(DELAY - timedelta(seconds=30)):
        emails_task()
    assert len(smtp_server) == 0  # not yet due
    with later(DELAY + timedelta(seconds=1)):
        counts = emails_task()
    assert counts["unread_replies"] == 1
    [mail] = smtp_server.to("carol@example.com")
    text, html = text_of(mail), html_of(mail)
    assert "It left the warehouse today." in text and "Tracking: <b>XY123</b>" in text
    assert "Tracking: &lt;b&gt;XY123&lt;/b&gt;" in html  # the agent's text is escaped in HTML
    assert "https://shop.example.com/help" in text and 'href="https://shop.example.com/help"' in html
    reply_to = mail["Reply-To"].addresses[0]
    assert reply_to.domain == "in.example.com"
    token = re.fullmatch(r"reply\+(.+)", reply_to.username)[1]
    assert emails.reply_token_read(token).conversation_id == answered.pk
    unsubscribe = re.search(r"https://chat\.example\.com/email/unsubscribe/[^/\s]+/", text)[0]
    assert mail["List-Unsubscribe"].strip() == f"<{unsubscribe}>"
    assert mail["Message-ID"] == OutboundEmail.objects.get().message_id


def test_the_same_answer_is_never_emailed_twice_and_a_later_one_goes_alone(answered, alice, smtp_server):
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
        emails_task()
    assert len(smtp_server) == 1
    services.agent_message_send(conversation_id=answered.pk, agent=alice, body="It arrives tomorrow.")
    with later(2 * DELAY + timedelta(seconds=2)):
        emails_task()
    assert len(smtp_server) == 2
    second = text_of(smtp_server.messages[1])
    assert "It arrives tomorrow." in second and "warehouse" not in second
    # The second email threads under the first.
    assert smtp_server.messages[1]["In-Reply-To"] == smtp_server.messages[0]["Message-ID"]


def test_an_answer_written_while_a_socket_of_the_customer_was_open_is_not_emailed(
    persistent, customer, alice, smtp_server
):
    customer.email = "carol@example.com"
    customer.save()
    services.agent_inbox_open(agent_id=alice.pk)
    services.customer_connect(customer=customer)
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Hello!")
    with later(DELAY + timedelta(seconds=1)):
        emails_task()  # still connected
        services.customer_disconnect(customer=customer)  # disconnected after it was delivered
        emails_task()
    assert len(smtp_server) == 0


def test_an_answer_the_customer_fetched_over_rest_is_not_emailed(answered, customer, smtp_server):
    services.customer_messages_fetched(customer=customer)
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    assert len(smtp_server) == 0


def test_a_socket_opened_after_the_answer_delivers_it(answered, customer, smtp_server):
    services.customer_connect(customer=customer)
    services.customer_disconnect(customer=customer)
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    assert len(smtp_server) == 0


@pytest.mark.parametrize("why", ["workstream_never", "unsubscribed", "no_address"])
def test_no_email_when_the_workstream_says_never_the_customer_unsubscribed_or_has_no_address(
    answered, customer, smtp_server, why
):
    if why == "workstream_never":
        answered.workstream.email_unread_after = None
        answered.workstream.save()
    elif why == "unsubscribed":
        services.customer_email_unsubscribe(customer_id=customer.pk)
    else:
        customer.email = ""
        customer.save()
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    assert len(smtp_server) == 0


def test_the_email_is_in_the_widget_language(answered, persistent, smtp_server):
    persistent.language = "da"
    persistent.save()
    Conversation.objects.filter(pk=answered.pk).update(language="da")
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    [mail] = smtp_server.messages
    assert "Du har et svar" in text_of(mail)
    assert "Nyt svar" in mail["Subject"]


def test_a_stored_email_survives_a_failing_mail_server_and_is_sent_later_once(answered, settings, smtp_server):
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens there
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    email = OutboundEmail.objects.get()
    assert email.sent_at is None and email.attempts == 1 and email.last_error
    assert email.kind == EmailKind.UNREAD_REPLIES
    settings.EMAIL_PORT = port
    with later(DELAY + timedelta(minutes=1)):
        emails_task()  # before the backoff (2 minutes): not tried
    assert len(smtp_server) == 0
    with later(DELAY + timedelta(minutes=4)):
        emails_task()
        emails_task()
    assert len(smtp_server) == 1
    email.refresh_from_db()
    assert email.sent_at is not None and email.attempts == 2


def test_an_email_whose_task_was_lost_is_sent_by_the_sweep(answered, monkeypatch, smtp_server):
    from conversations import jobs

    monkeypatch.setattr(jobs, "email_send_on_commit", lambda email_id: None)  # the broker lost it
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    assert len(smtp_server) == 0
    with later(DELAY + timedelta(minutes=2)):
        emails_task()
    assert len(smtp_server) == 1


def test_sending_a_stored_email_twice_sends_it_once(answered, smtp_server):
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    email = OutboundEmail.objects.get()
    assert emails.outbound_send(email.pk) is False
    assert len(smtp_server) == 1


def test_a_waiting_conversation_is_emailed_too_and_stays_waiting(answered, alice, smtp_server):
    services.conversation_wait(conversation_id=answered.pk, agent=alice)
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    assert len(smtp_server) == 1
    answered.refresh_from_db()
    assert answered.status == Status.WAITING


def test_customer_messages_are_chat_by_default(answered):
    assert set(answered.messages.values_list("channel", flat=True)) == {Channel.CHAT}


def test_an_internal_note_is_never_emailed_nor_makes_an_email_due(persistent, customer, alice, smtp_server):
    customer.email = "carol@example.com"
    customer.save()
    services.agent_inbox_open(agent_id=alice.pk)
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Chargeback risk", internal=True)
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    assert len(smtp_server) == 0  # a note alone is no answer
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Your order shipped.")
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Watch them", internal=True)
    with later(2 * DELAY + timedelta(seconds=2)):
        emails_task()
    [mail] = smtp_server.to("carol@example.com")
    assert "Your order shipped." in text_of(mail)
    assert "Chargeback" not in text_of(mail) + html_of(mail) and "Watch them" not in text_of(mail) + html_of(mail)
