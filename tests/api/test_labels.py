"""Labels (docs/protocol.md, "Labels"): defined in the admin, set by agents and supervisors
through the engine, carried by agent-facing conversations only, filtered on, and required at
wrap-up where the workstream says so."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from conversations import events, services
from conversations.models import Label, Status
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

A = "/api/v1/agent/"


@pytest.fixture(autouse=True)
def labels(db):
    return {
        name: Label.objects.create(name=name, colour=colour)
        for name, colour in (("billing", "#2563eb"), ("delivery", "#16a34a"), ("returns", "#d97706"))
    }


@pytest.fixture
def conversation(persistent, customer, alice):
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    return conversation


def put_labels(client, conversation_id, labels):
    return client.put(f"{A}conversations/{conversation_id}/labels/", {"labels": labels}, format="json")


def test_an_agent_sets_the_labels_of_its_conversation_and_the_conversation_carries_them(as_agent, alice, conversation):
    client = as_agent(alice)
    response = put_labels(client, conversation.pk, ["returns", "billing", "billing"])
    assert response.status_code == 200
    assert response.json()["labels"] == ["billing", "returns"]
    assert client.get(f"{A}conversations/{conversation.pk}/").json()["labels"] == ["billing", "returns"]
    assert put_labels(client, conversation.pk, ["delivery"]).json()["labels"] == ["delivery"]
    assert put_labels(client, conversation.pk, []).json()["labels"] == []


def test_the_conversation_list_filters_by_label(as_agent, alice, conversation, live, visitor):
    other = services.customer_message_send(widget=live, customer=visitor, body="Hello").conversation
    services.conversation_assign(conversation_id=other.pk, agent=alice)
    client = as_agent(alice)
    put_labels(client, conversation.pk, ["billing"])
    put_labels(client, other.pk, ["delivery"])
    listed = client.get(A + "conversations/?label=billing").json()["conversations"]
    assert [(c["id"], c["labels"]) for c in listed] == [(conversation.pk, ["billing"])]
    assert client.get(A + "conversations/?label=nothing").json()["conversations"] == []
    assert {c["id"] for c in client.get(A + "conversations/").json()["conversations"]} == {conversation.pk, other.pk}


def test_the_defined_labels_are_listed_with_their_colours(as_agent, alice):
    assert as_agent(alice).get(A + "labels/").json() == {
        "labels": [
            {"name": "billing", "colour": "#2563eb"},
            {"name": "delivery", "colour": "#16a34a"},
            {"name": "returns", "colour": "#d97706"},
        ]
    }


@pytest.mark.parametrize(
    ("given", "field"),
    [
        (["billing", "refunds"], "No such label: refunds."),
        ("billing", "Not a list of names."),
        ([1], "Not a list of names."),
        (None, "Not a list of names."),
        ([f"x{n}" for n in range(21)], "At most 20 labels."),
    ],
)
def test_bad_labels_are_a_validation_error_and_change_nothing(as_agent, alice, conversation, given, field):
    client = as_agent(alice)
    first = put_labels(client, conversation.pk, ["delivery"])
    assert first.status_code == 200, first.json()
    response = put_labels(client, conversation.pk, given)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["fields"] == {"labels": field}
    assert list(conversation.labels.values_list("name", flat=True)) == ["delivery"]


def test_a_body_that_is_no_object_is_a_validation_error(as_agent, alice, conversation):
    response = as_agent(alice).put(f"{A}conversations/{conversation.pk}/labels/", ["billing"], format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def test_another_agents_conversation_is_not_found(as_agent, bob, conversation):
    response = put_labels(as_agent(bob), conversation.pk, ["billing"])
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert put_labels(as_agent(bob), 2**62, ["billing"]).json()["code"] == "not_found"
    assert not conversation.labels.exists()


def test_a_user_who_is_no_agent_is_forbidden_and_staff_label_any_conversation(conversation):
    client = APIClient()
    client.force_authenticate(UserFactory())
    assert put_labels(client, conversation.pk, ["billing"]).json()["code"] == "forbidden"
    client.force_authenticate(UserFactory(is_staff=True))
    response = put_labels(client, conversation.pk, ["billing"])
    assert response.status_code == 200 and response.json()["labels"] == ["billing"]


def test_labels_reach_agents_and_supervisors_never_the_customer(
    as_agent, as_customer, alice, customer, conversation, broadcasts, commit
):
    with commit():
        put_labels(as_agent(alice), conversation.pk, ["billing"])
    groups = {group for group, frame in broadcasts}
    assert events.agent_group(alice.pk) in groups and events.SUPERVISORS_GROUP in groups
    assert events.customer_group(customer.pk, conversation.workstream_id) not in groups
    assert all(frame["conversation"]["labels"] == ["billing"] for _, frame in broadcasts)
    seen = as_customer(customer.external_id).get("/api/v1/widget/persistent/conversation/").json()
    assert seen["conversation"]["id"] == conversation.pk and "labels" not in seen["conversation"]


def test_an_assignment_tells_the_new_agent_the_labels(persistent, customer, alice, bob, broadcasts, commit):
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.conversation_labels_set(
        conversation_id=conversation.pk, user=UserFactory(is_staff=True), labels=["returns"]
    )
    with commit():
        services.conversation_assign(conversation_id=conversation.pk, agent=bob)
    frames = [frame for group, frame in broadcasts if group == events.agent_group(bob.pk)]
    assert [f["conversation"]["labels"] for f in frames if f["type"] == "conversation"] == [["returns"]]


def test_a_workstream_that_requires_a_label_refuses_to_close_without_one(as_agent, alice, conversation):
    conversation.workstream.label_required = True
    conversation.workstream.save()
    client = as_agent(alice)
    assert client.post(f"{A}conversations/{conversation.pk}/end/").json()["status"] == Status.WRAP_UP
    refused = client.post(f"{A}conversations/{conversation.pk}/close/", {"notes": ""}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "validation_error" and "labels" in refused.json()["fields"]
    put_labels(client, conversation.pk, ["billing"])
    closed = client.post(f"{A}conversations/{conversation.pk}/close/", {"notes": ""}, format="json")
    assert closed.status_code == 200 and closed.json()["status"] == Status.CLOSED


def test_a_workstream_that_does_not_require_a_label_closes_without_one(as_agent, alice, conversation):
    client = as_agent(alice)
    client.post(f"{A}conversations/{conversation.pk}/end/")
    closed = client.post(f"{A}conversations/{conversation.pk}/close/", {"notes": ""}, format="json")
    assert closed.json()["status"] == Status.CLOSED


def test_an_agent_who_reads_the_customers_closed_conversation_may_label_it(as_agent, alice, conversation):
    client = as_agent(alice)
    client.post(f"{A}conversations/{conversation.pk}/end/")
    client.post(f"{A}conversations/{conversation.pk}/close/", {"notes": ""}, format="json")
    assert put_labels(client, conversation.pk, ["delivery"]).json()["labels"] == ["delivery"]
    newcomer = AgentFactory()
    assert put_labels(as_agent(newcomer), conversation.pk, ["billing"]).json()["code"] == "not_found"
