"""Labels in the inbox and the supervisor view: set from the conversation's head through the
engine, shown on the conversation and in the lists, filtered on, required at wrap-up where
the workstream says so."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from conversations import services
from conversations.models import Label, Status
from tests.agents.test_supervisor import start

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def defined(db):
    return [
        Label.objects.create(name="billing", colour="#2563eb"),
        Label.objects.create(name="delivery", colour="#16a34a"),
    ]


def row_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-conversation-id="(\d+)"', html)}


def test_an_agent_ticks_labels_on_its_conversation(alice_client, alice, persistent, commit):
    with commit():
        conversation = start(persistent)
    url = reverse("agents:labels", args=[conversation.pk])
    response = alice_client.post(url, {"labels": ["delivery", "billing"]}, **HX)
    assert response.status_code == 200
    head = response.content.decode()
    assert 'class="chip" data-label="billing" data-colour="#2563eb"' in head
    assert 'value="delivery" checked' in head
    assert sorted(conversation.labels.values_list("name", flat=True)) == ["billing", "delivery"]
    assert alice_client.post(url, {}, **HX).status_code == 200  # nothing ticked: no labels
    assert not conversation.labels.exists()


def test_an_unknown_label_is_refused_with_its_code(alice_client, alice, persistent, commit):
    with commit():
        conversation = start(persistent)
    response = alice_client.post(reverse("agents:labels", args=[conversation.pk]), {"labels": ["nope"]}, **HX)
    assert response.status_code == 400 and 'data-code="validation_error"' in response.content.decode()


def test_another_agents_conversation_cannot_be_labelled_from_the_inbox(client, bob, alice, persistent, commit):
    with commit():
        conversation = start(persistent)
    conversation.refresh_from_db()
    holder, other = (alice, bob) if conversation.agent_id == alice.pk else (bob, alice)
    assert conversation.agent_id == holder.pk
    client.force_login(other.user)
    response = client.post(reverse("agents:labels", args=[conversation.pk]), {"labels": ["billing"]}, **HX)
    assert response.status_code == 404
    assert not conversation.labels.exists()


def test_the_sidebar_shows_labels_and_filters_by_one(alice_client, alice, persistent, live, commit):
    with commit():
        billed = start(persistent)
        other = start(live)
    services.conversation_labels_set(conversation_id=billed.pk, user=alice.user, labels=["billing"])
    every = alice_client.get(reverse("agents:sidebar")).content.decode()
    assert row_ids(every) == {billed.pk, other.pk}
    assert '<span class="chip chip-small" data-colour="#2563eb">billing</span>' in every
    filtered = alice_client.get(reverse("agents:sidebar"), {"label": "billing"}).content.decode()
    assert row_ids(filtered) == {billed.pk}
    assert '<option value="billing" selected>' in filtered
    assert row_ids(alice_client.get(reverse("agents:sidebar"), {"label": "delivery"}).content.decode()) == set()
    # A name that is no label filters nothing.
    assert row_ids(alice_client.get(reverse("agents:sidebar"), {"label": "<x>"}).content.decode()) == {
        billed.pk,
        other.pk,
    }


def test_wrap_up_tells_and_enforces_a_required_label(alice_client, alice, persistent, commit):
    persistent.workstream.label_required = True
    persistent.workstream.save()
    with commit():
        conversation = start(persistent)
    with commit():
        services.conversation_end(conversation_id=conversation.pk, agent=alice)
    page = alice_client.get(reverse("agents:conversation", args=[conversation.pk]), **HX).content.decode()
    assert "needs a label before the conversation can be closed" in page
    close = reverse("agents:action", args=[conversation.pk, "close"])
    refused = alice_client.post(close, {"notes": ""}, **HX)
    assert refused.status_code == 400 and 'data-code="validation_error"' in refused.content.decode()
    alice_client.post(reverse("agents:labels", args=[conversation.pk]), {"labels": ["billing"]}, **HX)
    assert alice_client.post(close, {"notes": ""}, **HX).status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED


def test_the_supervisor_filters_by_label_and_labels_any_conversation(
    supervisor_client, alice, persistent, live, commit
):
    with commit():
        billed = start(persistent)
        other = start(live)
    response = supervisor_client.post(reverse("agents:labels", args=[billed.pk]), {"labels": ["billing"]}, **HX)
    assert response.status_code == 200
    board = supervisor_client.get(reverse("agents:supervisor"), {"label": "billing"}).content.decode()
    assert row_ids(board) == {billed.pk}
    assert '<option value="billing" selected>' in board
    assert row_ids(supervisor_client.get(reverse("agents:supervisor")).content.decode()) == {billed.pk, other.pk}
