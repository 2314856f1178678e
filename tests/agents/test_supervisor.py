"""The supervisor view: every ongoing conversation, agent load, and actions through the engine."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import Presence
from conversations import services
from conversations.models import Conversation, Status
from tests.factories import CustomerFactory

HX = {"HTTP_HX_REQUEST": "true"}


def start(widget, body="Hello"):
    customer = CustomerFactory(
        authentication_setting=widget.authentication_setting,
        widget=None if widget.authentication_setting_id else widget,
    )
    return services.customer_message_send(widget=widget, customer=customer, body=body).conversation


def rows(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'<tr data-conversation-id="(\d+)"', html)}


def test_only_staff_may_open_the_supervisor_view(client, alice):
    client.force_login(alice.user)
    assert client.get(reverse("agents:supervisor")).status_code == 403
    client.logout()
    assert client.get(reverse("agents:supervisor")).status_code == 302


def test_supervisors_see_every_ongoing_conversation_with_wait_and_handle_time(
    supervisor_client, alice, bob, live, persistent, commit
):
    services.agent_presence_set(agent=bob, presence=Presence.OFFLINE)
    with commit():
        active = start(live)
        waiting = start(persistent)
    with commit():
        services.conversation_wait(conversation_id=waiting.pk, agent=alice)
    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    with commit():
        queued = start(live)
        closed = start(live)
    services.customer_conversation_end(widget=live, customer=closed.customer)

    html = supervisor_client.get(reverse("agents:supervisor")).content.decode()

    assert rows(html) == {active.pk, waiting.pk, queued.pk}
    assert "Alice" in html
    assert "Wait time" in html and "Handle time" in html
    assert re.search(rf'data-agent-id="{alice.pk}".*?50/100', html, re.S)


def test_the_supervisor_filters_by_queue_agent_and_status(supervisor_client, alice, bob, live, commit):
    services.agent_presence_set(agent=bob, presence=Presence.OFFLINE)
    with commit():
        mine = start(live)
    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    with commit():
        queued = start(live)
    url = reverse("agents:supervisor")
    assert rows(supervisor_client.get(url, {"status": "open"}, **HX).content.decode()) == {queued.pk}
    assert rows(supervisor_client.get(url, {"agent": alice.pk}, **HX).content.decode()) == {mine.pk}
    by_queue = supervisor_client.get(url, {"queue": live.workstream.queue_id}).content.decode()
    assert rows(by_queue) == {mine.pk, queued.pk}
    assert rows(supervisor_client.get(url, {"status": "nonsense", "queue": "x"}).content.decode()) == {
        mine.pk,
        queued.pk,
    }


def test_the_supervisor_force_closes_a_conversation(supervisor_client, alice, live, commit):
    with commit():
        conversation = start(live)
    with commit():
        response = supervisor_client.post(
            reverse("agents:supervisor-action", args=[conversation.pk, "force_close"]), {"query": "status=active"}, **HX
        )
    assert response.status_code == 200
    assert "Conversation closed." in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert conversation.ended_by == "supervisor"
    assert conversation.pk not in rows(response.content.decode())


def test_the_supervisor_assigns_an_open_conversation_even_above_capacity(supervisor_client, alice, live, commit):
    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    with commit():
        conversation = start(live)
    assert Conversation.objects.get(pk=conversation.pk).status == Status.OPEN
    with commit():
        supervisor_client.post(
            reverse("agents:supervisor-action", args=[conversation.pk, "assign"]), {"target": f"agent:{alice.pk}"}, **HX
        )
    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, alice.pk)


def test_the_supervisor_transfers_a_conversation_to_another_agent(supervisor_client, alice, bob, live, commit):
    services.agent_presence_set(agent=bob, presence=Presence.OFFLINE)
    with commit():
        conversation = start(live)
    with commit():
        supervisor_client.post(
            reverse("agents:supervisor-action", args=[conversation.pk, "transfer"]), {"target": f"agent:{bob.pk}"}, **HX
        )
    conversation.refresh_from_db()
    assert conversation.agent_id == bob.pk


def test_a_refused_supervisor_action_gives_its_error_code(supervisor_client, alice, live, commit):
    with commit():
        conversation = start(live)
    url = reverse("agents:supervisor-action", args=[conversation.pk, "assign"])
    response = supervisor_client.post(url, {"target": f"agent:{alice.pk}"}, **HX)  # active, not open
    assert response.status_code == 409
    assert 'data-code="invalid_transition"' in response.content.decode()
    response = supervisor_client.post(url, {"target": "agent:999999"}, **HX)
    assert response.status_code == 404
    response = supervisor_client.post(reverse("agents:supervisor-action", args=[999999, "force_close"]), **HX)
    assert response.status_code == 404


def test_the_supervisor_view_runs_a_constant_number_of_queries(supervisor_client, alice, live):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            supervisor_client.get(reverse("agents:supervisor"))
        return len(queries)

    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    start(live)
    few = count()
    for _ in range(30):
        start(live)
    assert count() == few


def test_the_supervisor_view_speaks_danish(supervisor_client):
    html = supervisor_client.get(reverse("agents:supervisor"), HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert "Igangværende samtaler" in html
