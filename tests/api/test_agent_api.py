"""The agent's REST endpoints (docs/protocol.md, "Agent REST")."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from conversations import services
from tests.factories import (
    AgentFactory,
    ChatWidgetFactory,
    CustomerFactory,
    QueueFactory,
    UserFactory,
    WorkstreamFactory,
    api_key,
)
from workstreams.models import DistributionMode

pytestmark = pytest.mark.django_db

A = "/api/v1/agent/"


@pytest.fixture
def conversation(persistent, customer, alice):
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    return conversation


def test_me_shows_presence_and_derived_capacity(as_agent, alice, conversation):
    assert as_agent(alice).get(A + "me/").json() == {
        "id": alice.pk,
        "name": "Alice",
        "presence": "busy",
        "capacity": {"total": 100, "used": 50, "available": 50},
    }


def test_patch_me_changes_presence(as_agent, alice):
    client = as_agent(alice)
    assert client.patch(A + "me/", {"presence": "away"}, format="json").json()["presence"] == "away"
    bad = client.patch(A + "me/", {"presence": "asleep"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"


def test_only_authenticated_agents_get_in(api, superuser):
    anonymous = api.get(A + "me/")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "authentication_required"
    api.credentials(HTTP_AUTHORIZATION="Token nope")
    assert api.get(A + "me/").json()["code"] == "invalid_token"
    client = APIClient()
    client.force_authenticate(UserFactory())
    not_agent = client.get(A + "me/")
    assert not_agent.status_code == 403 and not_agent.json()["code"] == "forbidden"


@pytest.mark.parametrize("key", ["nul\x00key", "x" * 41])
def test_a_token_that_cannot_exist_is_invalid_not_an_error(api, key):
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = api.get(A + "me/")
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_the_token_of_a_deactivated_user_is_invalid(api, alice):
    key = api_key(alice.user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(A + "me/").status_code == 200
    type(alice.user).objects.filter(pk=alice.user.pk).update(is_active=False)
    response = api.get(A + "me/")
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_my_conversations_filtered_by_status(as_agent, alice, conversation):
    client = as_agent(alice)
    mine = client.get(A + "conversations/").json()["conversations"]
    assert [c["id"] for c in mine] == [conversation.pk]
    assert mine[0]["customer"]["name"] == "Carol" and mine[0]["workstream"]["name"] == "Persistent"
    assert client.get(A + "conversations/", {"status": "waiting"}).json() == {"conversations": []}
    assert len(client.get(A + "conversations/", {"status": "active,waiting"}).json()["conversations"]) == 1
    bad = client.get(A + "conversations/", {"status": "sleeping"})
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"


def test_the_pick_queue_lists_open_conversations_of_my_pick_queues_and_pick_takes_one(as_agent, alice, bob):
    queue = QueueFactory()
    queue.agents.add(alice)
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, distribution_mode=DistributionMode.PICK))
    conversation = services.customer_message_send(
        widget=widget, customer=CustomerFactory(authentication_setting=None, widget=widget), body="Hi"
    ).conversation
    listed = as_agent(alice).get(A + "queue/").json()["conversations"]
    assert [c["id"] for c in listed] == [conversation.pk]
    assert as_agent(bob).get(A + "queue/").json() == {"conversations": []}
    assert as_agent(alice).get(A + f"conversations/{conversation.pk}/").status_code == 200  # pickable: visible
    assert as_agent(alice).get(A + f"conversations/{conversation.pk}/messages/").json()["messages"][0]["body"] == "Hi"
    assert as_agent(bob).get(A + f"conversations/{conversation.pk}/messages/").status_code == 404
    picked = as_agent(alice).post(A + f"conversations/{conversation.pk}/pick/")
    assert picked.status_code == 200 and picked.json()["agent"]["id"] == alice.pk
    again = as_agent(alice).post(A + f"conversations/{conversation.pk}/pick/")
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"


def test_picking_another_agents_conversation_is_not_found_over_rest(as_agent, alice, bob):
    """Issue #19: bob, in the same pick queue, got 409 invalid_transition for the conversation
    alice picked, which told him it exists; now 404 not_found, as reading it is."""
    queue = QueueFactory()
    queue.agents.add(alice, bob)
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, distribution_mode=DistributionMode.PICK))
    conversation = services.customer_message_send(
        widget=widget, customer=CustomerFactory(authentication_setting=None, widget=widget), body="Hi"
    ).conversation
    assert as_agent(alice).post(A + f"conversations/{conversation.pk}/pick/").status_code == 200
    path = A + f"conversations/{conversation.pk}/"
    for response in (as_agent(bob).post(path + "pick/"), as_agent(bob).get(path)):
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_user_who_is_no_agent_is_refused_a_conversation_not_told_it_is_missing(conversation):
    client = APIClient()
    client.force_authenticate(UserFactory())
    for path in ("", "messages/"):
        for pk in (conversation.pk, 999999):
            response = client.get(A + f"conversations/{pk}/{path}")
            assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_someone_elses_conversation_does_not_exist_for_an_agent(as_agent, bob, conversation):
    client = as_agent(bob)
    for path in ("", "messages/"):
        response = client.get(A + f"conversations/{conversation.pk}/{path}")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    for action in ("wait", "resume", "end", "close"):
        assert client.post(A + f"conversations/{conversation.pk}/{action}/").status_code == 404
    assert (
        client.post(A + f"conversations/{conversation.pk}/messages/", {"body": "x"}, format="json").status_code == 404
    )
    assert client.get(A + "conversations/999999/").status_code == 404


def test_staff_see_every_conversation(conversation):
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    assert client.get(A + f"conversations/{conversation.pk}/").json()["id"] == conversation.pk
    assert client.get(A + f"conversations/{conversation.pk}/messages/").json()["messages"][0]["body"] == "Hi"


def test_a_page_of_history_is_three_small_queries(as_agent, alice, conversation):
    """History is read often (every open conversation, every scroll): token, a visibility
    check that reads no row (by the user's id: no query for the agent first), the page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = as_agent(alice)
    url = A + f"conversations/{conversation.pk}/messages/?limit=50"
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200 and response.json()["messages"]
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 3, sql
    visibility = [q for q in sql if 'FROM "conversations_conversation"' in q]
    assert len(visibility) == 1 and visibility[0].startswith('SELECT 1 FROM "conversations_conversation" INNER JOIN'), (
        visibility  # reads no row, and is the statement written out once (the ORM's says SELECT 1 AS "a")
    )
    assert not [q for q in sql if '"conversations_customer"' in q or '"workstreams_queue"' in q], sql


def test_ids_and_seqs_beyond_any_column_are_not_found_or_empty_not_an_error(as_agent, alice, conversation):
    client = as_agent(alice)
    huge = 10**20  # SQLite's driver cannot send it; PostgreSQL compares it as numeric
    missing = client.get(A + f"conversations/{huge}/messages/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    url = A + f"conversations/{conversation.pk}/messages/"
    assert client.get(url, {"after_seq": huge}).json() == {"messages": [], "has_more": False}
    before = client.get(url, {"before_seq": huge}).json()
    assert before == client.get(url).json() and before["messages"]


def test_agent_messages_are_sent_idempotently(as_agent, alice, conversation):
    url = A + f"conversations/{conversation.pk}/messages/"
    first = as_agent(alice).post(url, {"client_id": "a1", "body": "Hello"}, format="json")
    again = as_agent(alice).post(url, {"client_id": "a1", "body": "Hello"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    assert first.json()["sender"] == "agent" and first.json()["author"] == "Alice"


def test_wait_then_resume_through_the_api(as_agent, alice, conversation):
    url = A + f"conversations/{conversation.pk}/"
    waiting = as_agent(alice).post(url + "wait/")
    assert waiting.status_code == 200 and waiting.json()["status"] == "waiting" and waiting.json()["waiting_since"]
    assert as_agent(alice).get(A + "me/").json()["capacity"]["used"] == 0
    resumed = as_agent(alice).post(url + "resume/")
    assert resumed.status_code == 200
    assert (resumed.json()["status"], resumed.json()["waiting_since"]) == ("active", None)
    assert as_agent(alice).get(A + "me/").json()["capacity"]["used"] == 50


def test_wrong_transitions_are_409(as_agent, alice, conversation):
    response = as_agent(alice).post(A + f"conversations/{conversation.pk}/resume/")
    assert response.status_code == 409 and response.json()["code"] == "invalid_transition"
    close = as_agent(alice).post(A + f"conversations/{conversation.pk}/close/")
    assert close.status_code == 409


def test_transfer_to_an_agent_or_a_queue(as_agent, alice, bob, conversation):
    url = A + f"conversations/{conversation.pk}/transfer/"
    for bad in ({}, {"agent_id": bob.pk, "queue_id": 1}, {"agent_id": "x"}):
        response = as_agent(alice).post(url, bad, format="json")
        assert response.status_code == 400 and response.json()["code"] == "validation_error", bad
    assert as_agent(alice).post(url, {"agent_id": 999999}, format="json").status_code == 404
    moved = as_agent(alice).post(url, {"agent_id": bob.pk}, format="json")
    assert moved.status_code == 200 and moved.json()["agent"]["id"] == bob.pk
    queue = QueueFactory(name="Billing")
    requeued = as_agent(bob).post(url, {"queue_id": queue.pk}, format="json").json()
    assert requeued["status"] == "open" and requeued["queue"]["name"] == "Billing"


def test_transfer_to_a_full_agent_is_agent_unavailable(as_agent, alice, conversation):
    full = AgentFactory(capacity=10)
    response = as_agent(alice).post(
        A + f"conversations/{conversation.pk}/transfer/", {"agent_id": full.pk}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "agent_unavailable"


def test_session_authenticated_calls_need_csrf(alice, conversation):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice.user)
    assert client.get(A + "me/").status_code == 200
    refused = client.post(A + f"conversations/{conversation.pk}/wait/")
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"


def test_listing_conversations_runs_a_constant_number_of_queries(
    as_agent, alice, persistent, django_assert_max_num_queries
):
    setting = persistent.authentication_setting
    for _ in range(15):
        c = services.customer_message_send(
            widget=persistent, customer=CustomerFactory(authentication_setting=setting), body="Hi"
        ).conversation
        services.conversation_assign(conversation_id=c.pk, agent=alice)
    client = as_agent(alice)
    with django_assert_max_num_queries(6):
        assert len(client.get(A + "conversations/").json()["conversations"]) == 15
    with django_assert_max_num_queries(6):
        client.get(A + f"conversations/{c.pk}/messages/")
