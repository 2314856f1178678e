"""Transcripts by email (the customer's, to its own address; an agent's, to any address), rate
limited and without what the customer did not see; offline messages (live chat outside operating
hours): a conversation in the queue that stays there, answered by email (docs/email.md)."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from redis import Redis

from conversations import services, sweeps
from conversations.models import Conversation, EmailKind, OutboundEmail, Status
from conversations.tasks import emails_task, sweep_task
from tests import files
from tests.factories import OperatingHoursFactory
from tests.smtp import html_of, smtp_server, text_of  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_transcript_limits():
    """The limits count in Redis by customer and user id, which the next test run reuses."""
    client = Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter("omnichannel:rate:transcript:*"):
        client.delete(key)
    yield


@pytest.fixture
def conversation(persistent, customer, alice):
    customer.email = "carol@example.com"
    customer.save()
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hello").conversation
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Hi Carol, how can I help?")
    return conversation


def test_the_customer_gets_the_transcript_of_the_current_conversation_at_its_own_address(
    as_customer, customer, conversation, smtp_server
):
    response = as_customer(customer.external_id).post("/api/v1/widget/persistent/conversation/transcript/")
    assert response.status_code == 202 and response.json() == {"status": "accepted"}
    [mail] = smtp_server.to("carol@example.com")
    assert "Hello" in text_of(mail) and "Hi Carol, how can I help?" in text_of(mail)
    assert "Hi Carol, how can I help?" in html_of(mail)
    assert mail["Reply-To"] is None  # a record, not a conversation by email
    assert OutboundEmail.objects.get().kind == EmailKind.TRANSCRIPT


def test_a_transcript_names_the_attachments_of_its_messages(
    as_customer, client, alice, customer, conversation, persistent, smtp_server
):
    photo = services.customer_attachment_upload(
        widget=persistent, customer=customer, upload=SimpleUploadedFile("parcel.png", files.png())
    )
    services.customer_message_send(widget=persistent, customer=customer, body="", attachments=[str(photo.pk)])
    as_customer(customer.external_id).post("/api/v1/widget/persistent/conversation/transcript/")
    [mail] = smtp_server.to("carol@example.com")
    assert "[Attachment: parcel.png]" in text_of(mail) and "[Attachment: parcel.png]" in html_of(mail)
    client.force_login(alice.user)
    download = client.get(f"/agent/conversations/{conversation.pk}/transcript.txt")
    assert "[Attachment: parcel.png]" in download.content.decode()


def test_the_customers_transcripts_are_rate_limited(as_customer, customer, conversation, smtp_server):
    client = as_customer(customer.external_id)
    answers = [client.post("/api/v1/widget/persistent/conversation/transcript/").status_code for _ in range(6)]
    assert answers == [202] * 5 + [429]
    assert len(smtp_server) == 5


def test_a_customer_without_an_address_or_a_conversation_gets_a_clear_error(as_customer, persistent, customer):
    response = as_customer(customer.external_id).post("/api/v1/widget/persistent/conversation/transcript/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    services.customer_message_send(widget=persistent, customer=customer, body="Hello")
    response = as_customer(customer.external_id).post("/api/v1/widget/persistent/conversation/transcript/")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def test_an_agent_sends_the_transcript_to_a_given_address(as_agent, alice, conversation, smtp_server):
    response = as_agent(alice).post(
        f"/api/v1/agent/conversations/{conversation.pk}/transcript/", {"email": "boss@example.com"}, format="json"
    )
    assert response.status_code == 202
    [mail] = smtp_server.to("boss@example.com")
    assert "Hi Carol, how can I help?" in text_of(mail)


def test_an_agent_must_give_a_valid_address_and_may_only_send_readable_conversations(
    as_agent, alice, bob, conversation, smtp_server
):
    url = f"/api/v1/agent/conversations/{conversation.pk}/transcript/"
    bad = as_agent(alice).post(url, {"email": "not an address"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"
    other = as_agent(bob).post(url, {"email": "bob@example.com"}, format="json")
    assert other.status_code == 404
    assert len(smtp_server) == 0


def test_an_agents_transcripts_are_rate_limited(as_agent, alice, conversation, smtp_server):
    client = as_agent(alice)
    url = f"/api/v1/agent/conversations/{conversation.pk}/transcript/"
    answers = [client.post(url, {"email": "boss@example.com"}, format="json").status_code for _ in range(31)]
    assert answers.count(202) == 30 and answers[-1] == 429


# --- Offline messages ------------------------------------------------------------------------------


@pytest.fixture
def closed_live(live):
    """The live widget's queue is closed now (open one hour a week, at another time)."""
    now = timezone.now()
    hours = OperatingHoursFactory(time_zone="UTC")
    hours.intervals.create(weekday=(now.weekday() + 3) % 7, opens_at=time(9), closes_at=time(10))
    live.workstream.queue.operating_hours = hours
    live.workstream.queue.save()
    live.workstream.email_unread_after = None  # an offline message is answered by email anyway
    live.workstream.save()
    return live


def test_outside_operating_hours_a_visitor_leaves_a_message_that_waits_in_the_queue(api, closed_live):
    response = api.post(
        "/api/v1/widget/live/offline-message/",
        {"name": "Vera", "email": "vera@example.com", "body": "Please call me back."},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["body"] == "Please call me back."
    conversation = Conversation.objects.get()
    assert conversation.status == Status.OPEN and conversation.started_offline
    assert conversation.customer.display_name == "Vera" and conversation.customer.email == "vera@example.com"
    # An ordinary message is still refused outside operating hours.
    token = api.post("/api/v1/widget/live/visitor/").json()["token"]
    refused = api.post(
        "/api/v1/widget/live/conversation/messages/",
        {"body": "Hi"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert refused.json()["code"] == "outside_operating_hours"
    # It is neither closed by the open timeout nor as a disconnected live chat.
    with time_machine.travel(timezone.now() + timedelta(days=2), tick=False):
        assert not [due for due in sweeps.due(timezone.now()) if due[0] == conversation.pk]
        sweep_task()
    conversation.refresh_from_db()
    assert conversation.status == Status.OPEN


def test_the_agents_answer_to_an_offline_message_goes_by_email_at_once(api, closed_live, alice, smtp_server):
    api.post(
        "/api/v1/widget/live/offline-message/",
        {"name": "Vera", "email": "vera@example.com", "body": "Please call me back."},
        format="json",
    )
    conversation = Conversation.objects.get()
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)  # the queue is closed: no push
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="We will call at 9.")
    emails_task()
    [mail] = smtp_server.to("vera@example.com")
    assert "We will call at 9." in text_of(mail)
    assert OutboundEmail.objects.get().kind == EmailKind.OFFLINE_ANSWER


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "Vera", "body": "Hi"}, "email"),
        ({"name": "Vera", "email": "not an address", "body": "Hi"}, "email"),
        ({"name": "Vera", "email": "vera@example.com"}, "body"),
    ],
)
def test_an_offline_message_needs_an_address_and_a_body(api, closed_live, data, field):
    response = api.post("/api/v1/widget/live/offline-message/", data, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert field in response.json()["errors"]
    assert not Conversation.objects.exists()


def test_an_empty_offline_message_is_body_empty(api, closed_live):
    response = api.post(
        "/api/v1/widget/live/offline-message/", {"email": "vera@example.com", "body": "  "}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "body_empty"


def test_a_signed_in_widget_needs_the_customers_token_for_an_offline_message(api, persistent):
    response = api.post(
        "/api/v1/widget/persistent/offline-message/", {"email": "x@example.com", "body": "Hi"}, format="json"
    )
    assert response.status_code == 401 and response.json()["code"] == "authentication_required"


# --- The inbox's "Email transcript" ---------------------------------------------------------------


def test_the_inbox_offers_an_email_transcript_form_with_the_customers_address(client, alice, conversation):
    client.force_login(alice.user)
    html = client.get(f"/agent/conversations/{conversation.pk}/").content.decode()
    assert f'hx-post="/agent/conversations/{conversation.pk}/email-transcript/"' in html
    assert 'name="email" required maxlength="254" value="carol@example.com"' in html


def test_the_inbox_emails_the_transcript_to_the_address_given_and_says_so_in_a_toast(
    client, alice, conversation, smtp_server
):
    client.force_login(alice.user)
    response = client.post(
        f"/agent/conversations/{conversation.pk}/email-transcript/",
        {"email": "boss@example.com"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response["HX-Retarget"] == "#toasts"
    assert "boss@example.com" in response.content.decode() and "toast-success" in response.content.decode()
    [mail] = smtp_server.to("boss@example.com")
    assert "Hi Carol, how can I help?" in text_of(mail)


def test_the_inbox_refuses_a_bad_address_with_a_toast_and_sends_nothing(client, alice, conversation, smtp_server):
    client.force_login(alice.user)
    url = f"/agent/conversations/{conversation.pk}/email-transcript/"
    response = client.post(url, {"email": "not an address"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and 'data-code="validation_error"' in response.content.decode()
    assert len(smtp_server) == 0 and not OutboundEmail.objects.exists()


def test_the_inbox_shares_the_agents_transcript_limit_with_the_api(client, alice, conversation, smtp_server):
    client.force_login(alice.user)
    url = f"/agent/conversations/{conversation.pk}/email-transcript/"
    codes = [client.post(url, {"email": "boss@example.com"}).status_code for _ in range(31)]
    assert codes[:30] == [302] * 30 and codes[30] == 302  # without JavaScript: a message and a redirect
    assert len(smtp_server) == 30
