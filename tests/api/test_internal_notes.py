"""Internal notes over REST (docs/protocol.md, "Internal notes"): agents write and read them with
``"internal": true``; the customer's history, its conversation and its transcript never show one,
and its numbering has no gap where a note is."""

from __future__ import annotations

import pytest
import yaml

from conversations import services
from tests.smtp import html_of, smtp_server, text_of  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

A = "/api/v1/agent/conversations/"
W = "/api/v1/widget/persistent/conversation/"


def test_an_agent_writes_a_note_and_reads_it_back_marked_internal(as_agent, alice, conversation):
    client = as_agent(alice)
    response = client.post(
        f"{A}{conversation.pk}/messages/", {"client_id": "n-1", "body": "VIP, be nice", "internal": True}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["internal"] is True and response.json()["seq"] == conversation.last_seq + 1
    answer = client.post(f"{A}{conversation.pk}/messages/", {"body": "Hi Carol"}, format="json").json()
    assert answer["internal"] is False
    history = client.get(f"{A}{conversation.pk}/messages/").json()["messages"]
    assert [(m["body"], m["internal"]) for m in history[-2:]] == [("VIP, be nice", True), ("Hi Carol", False)]
    assert [m["seq"] for m in history] == list(range(1, len(history) + 1))
    assert client.get(f"{A}{conversation.pk}/").json()["last_seq"] == len(history)


def test_the_customer_never_sees_a_note_and_its_seq_has_no_gap(as_agent, as_customer, alice, customer, conversation):
    agent = as_agent(alice)
    agent.post(f"{A}{conversation.pk}/messages/", {"body": "Fraud check pending", "internal": True}, format="json")
    agent.post(f"{A}{conversation.pk}/messages/", {"body": "Hi Carol"}, format="json")
    carol = as_customer(customer.external_id)
    history = carol.get(f"{W}messages/").json()["messages"]
    assert "Fraud check pending" not in [m["body"] for m in history]
    assert [m["seq"] for m in history] == list(range(1, len(history) + 1))
    assert all(m["internal"] is False for m in history)
    assert history[-1]["body"] == "Hi Carol"
    assert carol.get(f"{W}").json()["conversation"]["last_seq"] == history[-1]["seq"]
    # Catching up and paging back use the customer's numbering too.
    after = carol.get(f"{W}messages/?after_seq={history[-2]['seq']}").json()["messages"]
    assert [m["body"] for m in after] == ["Hi Carol"]
    before = carol.get(f"{W}messages/?before_seq={history[-1]['seq']}").json()["messages"]
    assert [m["seq"] for m in before] == [m["seq"] for m in history[:-1]]


def test_a_customer_sending_a_note_is_forbidden_and_nothing_is_written(as_customer, customer, conversation):
    carol = as_customer(customer.external_id)
    before = carol.get(f"{W}messages/").json()["messages"]
    response = carol.post(f"{W}messages/", {"body": "I am an agent now", "internal": True}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert carol.get(f"{W}messages/").json()["messages"] == before


def test_a_customer_may_say_internal_false(as_customer, customer, conversation):
    response = as_customer(customer.external_id).post(f"{W}messages/", {"body": "Hi", "internal": False}, format="json")
    assert response.status_code == 201 and response.json()["internal"] is False


@pytest.mark.parametrize("internal", ["true", 1, None, ["x"]])
def test_internal_that_is_not_a_boolean_is_a_validation_error(as_agent, alice, conversation, internal):
    response = as_agent(alice).post(
        f"{A}{conversation.pk}/messages/", {"body": "x", "internal": internal}, format="json"
    )
    if internal is None:  # null is "not given", as for client_id
        assert response.status_code == 201 and response.json()["internal"] is False
        return
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error" and "internal" in response.json()["fields"]


def test_an_agent_without_the_conversation_cannot_leave_a_note(as_agent, bob, conversation):
    response = as_agent(bob).post(f"{A}{conversation.pk}/messages/", {"body": "x", "internal": True}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.django_db(transaction=True)
def test_the_customers_transcript_email_has_no_note(as_agent, as_customer, alice, customer, conversation, smtp_server):
    customer.email = "carol@example.com"
    customer.save()
    agent = as_agent(alice)
    agent.post(f"{A}{conversation.pk}/messages/", {"body": "Refund approved by Eve", "internal": True}, format="json")
    agent.post(f"{A}{conversation.pk}/messages/", {"body": "Your refund is on its way"}, format="json")
    assert as_customer(customer.external_id).post(f"{W}transcript/").status_code == 202
    [mail] = smtp_server.to("carol@example.com")
    assert "Your refund is on its way" in text_of(mail) and "Eve" not in text_of(mail)
    assert "Eve" not in html_of(mail)


def test_the_transcript_an_agent_downloads_has_no_note(client, alice, conversation):
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Blacklisted", internal=True)
    client.force_login(alice.user)
    text = client.get(f"/agent/conversations/{conversation.pk}/transcript.txt").content.decode()
    assert "Hello" in text and "Blacklisted" not in text


def test_the_schema_documents_internal(api):
    schema = yaml.safe_load(api.get("/api/schema/").content)
    schemas = schema["components"]["schemas"]
    assert "internal" in schemas["MessageOut"]["properties"]
    assert "internal" in schemas["MessageSendDocRequest"]["properties"]
