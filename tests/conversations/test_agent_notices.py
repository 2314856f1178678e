"""Agents off the page (docs/email.md): an agent with no inbox open is emailed, batched, when a
conversation is assigned to them or a customer comes back to them; never while an inbox of
theirs is open, never twice for the same event, not when they said no."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from agents.models import Agent
from conversations import services
from conversations.models import EmailKind, OutboundEmail, Status
from conversations.tasks import emails_task
from tests.cast import alice, commit, customer, eager_celery, other_customer, persistent, queue  # noqa: F401
from tests.smtp import html_of, smtp_server, text_of  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

DELAY = timedelta(seconds=120)


@pytest.fixture(autouse=True)
def _email_settings(settings):
    settings.SITE_URL = "https://chat.example.com"
    settings.AGENT_NOTICE_DELAY = DELAY.total_seconds()


@pytest.fixture
def away(alice):
    """Alice has an address and had an inbox open until a minute ago."""
    alice.user.email = "alice@example.com"
    alice.user.save()
    services.agent_inbox_open(agent_id=alice.pk)
    with later(-timedelta(minutes=1)):
        services.agent_inbox_close(agent_id=alice.pk)
    return alice


def later(delta: timedelta):
    return time_machine.travel(timezone.now() + delta, tick=False)


def assign(widget, customer):
    conversation = services.customer_message_send(widget=widget, customer=customer, body="Hello?").conversation
    conversation.refresh_from_db()
    return conversation


def test_assignments_while_no_inbox_is_open_go_in_one_email_after_the_delay(
    away, persistent, customer, other_customer, smtp_server
):
    first, second = assign(persistent, customer), assign(persistent, other_customer)
    assert first.agent_id == second.agent_id == away.pk
    with later(DELAY - timedelta(seconds=5)):
        assert emails_task()["agent_notices"] == 0  # not yet: more may come and go in the same email
    with later(DELAY + timedelta(seconds=1)):
        assert emails_task()["agent_notices"] == 1
    [mail] = smtp_server.to("alice@example.com")
    text, html = text_of(mail), html_of(mail)
    assert "A conversation with Carol was assigned to you" in text and "Dave" in text
    assert f"https://chat.example.com/agent/conversations/{first.pk}/" in text
    assert f'href="https://chat.example.com/agent/conversations/{second.pk}/"' in html
    assert "2 conversations need you" in mail["Subject"]
    assert OutboundEmail.objects.get().kind == EmailKind.AGENT_NOTICES


def test_the_same_assignment_is_never_emailed_twice_and_a_later_one_goes_alone(
    away, persistent, customer, other_customer, smtp_server
):
    assign(persistent, customer)
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
    with later(DELAY * 2):
        assert emails_task()["agent_notices"] == 0
        assign(persistent, other_customer)
    with later(DELAY * 3 + timedelta(seconds=1)):
        assert emails_task()["agent_notices"] == 1
    first, second = smtp_server.to("alice@example.com")
    assert "Dave" not in text_of(first) and "Carol" not in text_of(second) and "Dave" in text_of(second)


def test_no_email_while_an_inbox_is_open_nor_for_what_happened_then(away, persistent, customer, smtp_server):
    services.agent_inbox_open(agent_id=away.pk)
    assign(persistent, customer)
    with later(DELAY + timedelta(seconds=1)):
        assert emails_task()["agent_notices"] == 0
    with later(DELAY * 2):
        services.agent_inbox_close(agent_id=away.pk)  # seen: it was assigned while the inbox was open
    with later(DELAY * 4):
        assert emails_task()["agent_notices"] == 0
    assert len(smtp_server) == 0


def test_two_inboxes_open_and_one_closed_is_still_an_inbox_open(away, persistent, customer, smtp_server):
    services.agent_inbox_open(agent_id=away.pk)
    services.agent_inbox_open(agent_id=away.pk)
    services.agent_inbox_close(agent_id=away.pk)
    assign(persistent, customer)
    with later(DELAY + timedelta(seconds=1)):
        assert emails_task()["agent_notices"] == 0


def test_a_customer_coming_back_to_the_agent_is_emailed(away, persistent, customer, smtp_server):
    conversation = assign(persistent, customer)
    with later(DELAY + timedelta(seconds=1)):
        emails_task()
        services.conversation_wait(conversation_id=conversation.pk, agent=away)
    with later(DELAY * 3):
        services.customer_message_send(widget=persistent, customer=customer, body="I am back")
        conversation.refresh_from_db()
        assert conversation.status == Status.ACTIVE and conversation.agent_id == away.pk
    with later(DELAY * 4 + timedelta(seconds=1)):
        assert emails_task()["agent_notices"] == 1
    assert "Carol came back to you" in text_of(smtp_server.to("alice@example.com")[-1])


def test_no_email_when_the_agent_said_no_or_has_no_address(away, persistent, customer, smtp_server):
    services.agent_profile_update(
        agent_id=away.pk,
        presence=away.presence,
        presence_auto=away.presence_auto,
        capacity=away.capacity,
        email_notifications=False,
    )
    assert Agent.objects.get(pk=away.pk).email_notifications is False
    assign(persistent, customer)
    with later(DELAY + timedelta(seconds=1)):
        assert emails_task()["agent_notices"] == 0
    Agent.objects.filter(pk=away.pk).update(email_notifications=True)
    away.user.email = ""
    away.user.save()
    with later(DELAY + timedelta(seconds=2)):
        assert emails_task()["agent_notices"] == 0
    assert len(smtp_server) == 0


def test_the_admin_saves_the_preference(away, client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    url = f"/admin/agents/agent/{away.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["queues"] = list(data.get("queues", []))
    data.pop("email_notifications")  # an unticked box is not posted
    response = client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert Agent.objects.get(pk=away.pk).email_notifications is False
