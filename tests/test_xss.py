"""XSS: message bodies, customer names and wrap-up notes with markup render as text everywhere
the server renders them (the inbox and its partials, the supervisor view, the admin, inline and
downloaded transcripts, the widget's pages). Browsers: tests/browser/test_security.py."""

from __future__ import annotations

import html

import pytest

from conversations import services
from conversations.models import Conversation, Status
from tests.cast import (  # noqa: F401 - fixtures
    alice,
    bob,
    broadcasts,
    commit,
    customer,
    eager_celery,
    live,
    other_customer,
    persistent,
    queue,
    visitor,
)
from tests.factories import CustomerFactory
from tests.xss import BODIES, IMG, NAME, NOTES, SCRIPT, live_markup

HX = {"HTTP_HX_REQUEST": "true"}


def _chat(widget, customer, agent) -> Conversation:
    """Every payload from the customer, then from the agent."""
    conversation = None
    for body in BODIES:
        conversation = services.customer_message_send(widget=widget, customer=customer, body=body).conversation
    if Conversation.objects.get(pk=conversation.pk).agent_id != agent.pk:
        services.conversation_assign(conversation_id=conversation.pk, agent=agent)
    for body in BODIES:
        services.agent_message_send(conversation_id=conversation.pk, agent=agent, body=body)
    return Conversation.objects.get(pk=conversation.pk)


@pytest.fixture
def story(alice, persistent, commit):
    """Alice (an agent, and staff) and a customer named with markup: an earlier conversation,
    closed with markup in its notes, and a current one."""
    alice.user.is_staff = alice.user.is_superuser = True
    alice.user.save()
    customer = CustomerFactory(authentication_setting=persistent.authentication_setting, display_name=NAME)
    with commit():
        earlier = _chat(persistent, customer, alice)
        services.conversation_end(conversation_id=earlier.pk, agent=alice)
        services.conversation_close(conversation_id=earlier.pk, agent=alice, notes=NOTES)
        current = _chat(persistent, customer, alice)
    assert current.status == Status.ACTIVE
    return {"earlier": earlier.pk, "current": current.pk, "customer": customer.pk}


@pytest.fixture
def staff_client(client, alice, story):
    client.force_login(alice.user)
    return client


def assert_inert(response, *texts: str) -> str:
    assert response.status_code == 200, response.status_code
    page = response.content.decode()
    assert live_markup(page) == []
    for text in texts:
        assert html.escape(text, quote=False) in page or html.escape(text) in page, f"{text!r} is not shown as text"
    return page


@pytest.mark.parametrize(
    ("name", "path", "headers"),
    [
        ("the inbox page", "/agent/conversations/{current}/", {}),
        ("the inbox's conversation pane (htmx)", "/agent/conversations/{current}/", HX),
        ("the inbox's sidebar (htmx)", "/agent/sidebar/", HX),
    ],
)
def test_the_inbox_shows_bodies_and_names_as_text(staff_client, story, name, path, headers):
    page = assert_inert(staff_client.get(path.format(**story), **headers), SCRIPT)
    assert html.escape(NAME, quote=False) in page


def test_the_inbox_shows_every_payload_as_text(staff_client, story):
    assert_inert(staff_client.get(f"/agent/conversations/{story['current']}/"), *BODIES, NAME)


def test_the_earlier_conversation_shown_inline_is_text(staff_client, story):
    assert_inert(staff_client.get(f"/agent/conversations/{story['earlier']}/history/"), *BODIES, NOTES)


def test_the_supervisor_view_shows_names_and_previews_as_text(staff_client, story):
    assert_inert(staff_client.get("/agent/supervisor/"), NAME, "javascript:alert(1)")
    assert_inert(staff_client.get("/agent/supervisor/", **HX), NAME)


def test_the_downloaded_transcript_is_plain_text_the_browser_never_renders(staff_client, story):
    response = staff_client.get(f"/agent/conversations/{story['earlier']}/transcript.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment;")
    text = response.content.decode()
    for body in BODIES:
        assert body in text  # verbatim: it is text, and is only ever shown as text
    assert NOTES in text


@pytest.mark.parametrize(
    "path",
    [
        "/admin/conversations/conversation/",
        "/admin/conversations/conversation/{current}/change/",
        "/admin/conversations/conversation/{earlier}/change/",
        "/admin/conversations/customer/",
        "/admin/conversations/customer/{customer}/change/",
    ],
)
def test_the_admin_shows_bodies_and_names_as_text(staff_client, story, path):
    assert_inert(staff_client.get(path.format(**story)), IMG)


def test_the_admin_messages_are_text(staff_client, story):
    page = assert_inert(staff_client.get(f"/admin/conversations/conversation/{story['current']}/change/"), *BODIES)
    assert 'href="javascript:' not in page


@pytest.mark.parametrize("action", ["force_close", "reassign"])
def test_the_admin_actions_confirmation_pages_are_text(staff_client, story, action):
    response = staff_client.post(
        "/admin/conversations/conversation/", {"action": action, "_selected_action": [story["current"]]}
    )
    assert_inert(response)


def test_the_widgets_pages_carry_no_customer_markup(client, story, persistent):
    """The panel renders messages in the browser (tests/browser/test_security.py); its HTML
    and its JSON configuration must not run what the admin typed either."""
    persistent.title = NAME
    persistent.save()
    for path in ("/widget/{key}/", "/widget/{key}/demo/"):
        assert_inert(client.get(path.format(key=persistent.widget_key)), NAME)
