"""The conversation console in the admin: history, force-close, reassign."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conversations import services
from conversations.models import Conversation, Status
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="sam", is_staff=True, is_superuser=True, first_name="Sam"))
    return client


@pytest.fixture
def conversation(persistent, customer):
    return services.customer_message_send(
        widget=persistent, customer=customer, body='<script>alert(1)</script><img src=x onerror="alert(2)">'
    ).conversation


def test_the_full_history_shows_in_order_and_escaped(staff_client, conversation, alice):
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Hello Carol")
    response = staff_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert content.index("&lt;script&gt;") < content.index("Hello Carol")


def test_list_filters_and_search(staff_client, conversation):
    url = reverse("admin:conversations_conversation_changelist")
    assert staff_client.get(url, {"status": "open"}).context["cl"].result_count == 1
    assert staff_client.get(url, {"status": "closed"}).context["cl"].result_count == 0
    assert staff_client.get(url, {"q": "Carol"}).context["cl"].result_count == 1


def test_force_close_asks_for_confirmation_then_closes_through_the_engine(staff_client, conversation):
    url = reverse("admin:conversations_conversation_changelist")
    data = {"action": "force_close", "_selected_action": [conversation.pk]}
    response = staff_client.post(url, data)
    assert response.status_code == 200 and b"Yes, close them" in response.content
    assert Conversation.objects.get().status == Status.OPEN
    response = staff_client.post(url, {**data, "post": "yes"})
    assert response.status_code == 302
    closed = Conversation.objects.get()
    assert closed.status == Status.CLOSED and closed.ended_by == "supervisor"
    assert closed.messages.filter(kind="ended_by_agent", body__contains="Sam").exists()


def test_reassign_assigns_open_and_transfers_active_conversations(staff_client, conversation, alice, bob):
    url = reverse("admin:conversations_conversation_changelist")
    data = {"action": "reassign", "_selected_action": [conversation.pk]}
    response = staff_client.post(url, data)
    assert response.status_code == 200 and "form" in response.context
    staff_client.post(url, {**data, "apply": "1", "agent": alice.pk})
    assert Conversation.objects.get().agent == alice
    staff_client.post(url, {**data, "apply": "1", "agent": bob.pk})
    moved = Conversation.objects.get()
    assert (moved.agent, moved.status) == (bob, Status.ACTIVE)
    assert moved.messages.filter(kind="transferred").exists()


def test_conversations_cannot_be_edited_or_deleted_in_the_admin(staff_client, conversation):
    response = staff_client.post(
        reverse("admin:conversations_conversation_change", args=[conversation.pk]), {"status": "closed"}
    )
    assert response.status_code == 403
    assert Conversation.objects.get().status == Status.OPEN
    response = staff_client.post(reverse("admin:conversations_conversation_delete", args=[conversation.pk]))
    assert response.status_code == 403


def test_the_agent_list_shows_live_capacity_used_over_total(staff_client, conversation, alice, bob):
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    response = staff_client.get(reverse("admin:agents_agent_changelist"))
    content = response.content.decode()
    assert "50 / 100" in content  # alice: one persistent conversation of 50 units
    assert "0 / 100" in content  # bob
