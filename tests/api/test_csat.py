"""The satisfaction survey (docs/protocol.md, "Satisfaction survey (CSAT)"): asked once when a
live chat ends or a persistent conversation closes, where the workstream asks and an agent took
part; answered once by its own customer within 7 days; shown to agents and supervisors."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from conversations import events, services
from conversations.models import Conversation, Status
from tests.realtime.conftest import customer_token

pytestmark = pytest.mark.django_db

CSAT = "/api/v1/widget/persistent/csat/"


@pytest.fixture(autouse=True)
def _ask(persistent, live):
    for widget in (persistent, live):
        widget.workstream.csat_enabled = True
        widget.workstream.save()


def assigned(widget, customer, alice):
    conversation = services.customer_message_send(widget=widget, customer=customer, body="Hello").conversation
    conversation.refresh_from_db()
    if conversation.status == Status.OPEN:  # no commit here: no assignment ran
        services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    return conversation


def closed(widget, customer, alice) -> Conversation:
    conversation = assigned(widget, customer, alice)
    services.conversation_end(conversation_id=conversation.pk, agent=alice)
    services.conversation_close(conversation_id=conversation.pk, agent=alice)
    return Conversation.objects.get(pk=conversation.pk)


def csat_requests(broadcasts) -> list[tuple[str, dict]]:
    return [(group, frame) for group, frame in broadcasts if frame["type"] == "csat.request"]


def test_a_persistent_conversation_asks_its_customer_once_when_it_closes(
    persistent, customer, alice, broadcasts, commit
):
    conversation = assigned(persistent, customer, alice)
    with commit():
        services.conversation_end(conversation_id=conversation.pk, agent=alice)
    assert csat_requests(broadcasts) == []  # wrap-up is not the end of a persistent conversation
    with commit():
        services.conversation_close(conversation_id=conversation.pk, agent=alice)
    group = events.customer_group(customer.pk, persistent.workstream_id)
    assert csat_requests(broadcasts) == [(group, {"type": "csat.request", "conversation_id": conversation.pk})]
    assert Conversation.objects.get(pk=conversation.pk).csat_requested_at is not None


def test_a_live_chat_asks_when_it_ends_and_not_again_when_it_closes(live, visitor, alice, broadcasts, commit):
    conversation = assigned(live, visitor, alice)
    with commit():
        services.customer_conversation_end(widget=live, customer=visitor)
    assert [frame["conversation_id"] for _, frame in csat_requests(broadcasts)] == [conversation.pk]
    with commit():
        services.conversation_close(conversation_id=conversation.pk, agent=alice)
    assert len(csat_requests(broadcasts)) == 1


def test_no_question_without_an_agent_or_where_the_workstream_does_not_ask(
    live, visitor, persistent, customer, alice, broadcasts, commit
):
    services.agent_presence_set(agent=alice, presence="offline")
    services.customer_message_send(widget=live, customer=visitor, body="Anyone?")
    with commit():
        services.customer_conversation_end(widget=live, customer=visitor)  # left the queue: no agent
    persistent.workstream.csat_enabled = False
    persistent.workstream.save()
    services.agent_presence_set(agent=alice, presence="available")
    with commit():
        closed(persistent, customer, alice)
    assert csat_requests(broadcasts) == []


def test_the_customer_rates_once_and_agents_see_it(as_customer, customer, persistent, alice, broadcasts, commit):
    conversation = closed(persistent, customer, alice)
    client = as_customer(customer.external_id)
    with commit():
        response = client.post(
            CSAT, {"conversation_id": conversation.pk, "rating": 4, "comment": " Quick, thanks "}, format="json"
        )
    assert response.status_code == 201
    assert response.json() == {"conversation_id": conversation.pk, "csat": {"rating": 4, "comment": "Quick, thanks"}}
    agent_frames = [f for g, f in broadcasts if g == events.agent_group(alice.pk) and f["type"] == "conversation"]
    assert agent_frames[-1]["conversation"]["csat"] == {"rating": 4, "comment": "Quick, thanks"}
    again = client.post(CSAT, {"conversation_id": conversation.pk, "rating": 1}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_rated"
    conversation.refresh_from_db()
    assert (conversation.csat_rating, conversation.csat_comment) == (4, "Quick, thanks")


def test_the_agent_api_carries_the_rating(as_agent, as_customer, customer, persistent, alice):
    conversation = closed(persistent, customer, alice)
    url = f"/api/v1/agent/conversations/{conversation.pk}/"
    assert as_agent(alice).get(url).json()["csat"] is None
    as_customer(customer.external_id).post(CSAT, {"conversation_id": conversation.pk, "rating": 5}, format="json")
    assert as_agent(alice).get(url).json()["csat"] == {"rating": 5, "comment": ""}


def test_another_customers_conversation_is_not_found(as_customer, customer, other_customer, persistent, alice):
    conversation = closed(persistent, customer, alice)
    response = as_customer(other_customer.external_id).post(
        CSAT, {"conversation_id": conversation.pk, "rating": 5}, format="json"
    )
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert Conversation.objects.get(pk=conversation.pk).csat_rating is None


def test_a_conversation_that_was_not_asked_or_is_ongoing_is_not_found(as_customer, customer, persistent, alice):
    ongoing = assigned(persistent, customer, alice)
    response = as_customer(customer.external_id).post(CSAT, {"conversation_id": ongoing.pk, "rating": 5}, format="json")
    assert response.status_code == 404


def test_the_survey_closes_after_7_days(as_customer, customer, persistent, alice):
    conversation = closed(persistent, customer, alice)
    client = as_customer(customer.external_id)
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        client.credentials(
            HTTP_AUTHORIZATION="Bearer " + customer_token(persistent.authentication_setting, customer.external_id)
        )
        response = client.post(CSAT, {"conversation_id": conversation.pk, "rating": 3}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        client.credentials(
            HTTP_AUTHORIZATION="Bearer " + customer_token(persistent.authentication_setting, customer.external_id)
        )
        assert client.post(CSAT, {"conversation_id": conversation.pk, "rating": 3}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"rating": True}, "rating"),
        ({}, "rating"),
        ({"rating": 5, "comment": "x" * 2001}, "comment"),
        ({"rating": 5, "comment": 7}, "comment"),
        ({"rating": 5, "comment": "a\x00b"}, "comment"),
        ({"rating": 5, "conversation_id": "7"}, "conversation_id"),
    ],
)
def test_a_bad_answer_is_a_validation_error_naming_the_field(as_customer, customer, persistent, alice, body, field):
    conversation = closed(persistent, customer, alice)
    response = as_customer(customer.external_id).post(CSAT, {"conversation_id": conversation.pk, **body}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error" and field in response.json()["fields"]
    assert Conversation.objects.get(pk=conversation.pk).csat_submitted_at is None


def test_the_survey_needs_the_customers_token(api, customer, persistent, alice):
    conversation = closed(persistent, customer, alice)
    response = api.post(CSAT, {"conversation_id": conversation.pk, "rating": 5}, format="json")
    assert response.status_code == 401 and response.json()["code"] == "authentication_required"


def test_the_supervisor_view_shows_the_latest_ratings_and_the_weeks_average(
    client, as_customer, customer, other_customer, persistent, alice
):
    for who, rating, comment in ((customer, 5, "Great help"), (other_customer, 2, "Too slow")):
        conversation = closed(persistent, who, alice)
        as_customer(who.external_id).post(
            CSAT, {"conversation_id": conversation.pk, "rating": rating, "comment": comment}, format="json"
        )
    staff = alice.user
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    html = client.get("/agent/supervisor/").content.decode()
    assert "3.5 out of 5 from 2 ratings in the last 7 days" in html
    assert html.index("Too slow") < html.index("Great help")  # newest first


def test_the_customer_panel_shows_the_rating_of_an_earlier_conversation(
    client, as_customer, customer, persistent, alice
):
    earlier = closed(persistent, customer, alice)
    as_customer(customer.external_id).post(
        CSAT, {"conversation_id": earlier.pk, "rating": 2, "comment": "Slow answer"}, format="json"
    )
    current = assigned(persistent, customer, alice)
    client.force_login(alice.user)
    html = client.get(f"/agent/conversations/{current.pk}/").content.decode()
    assert f"#{earlier.pk}" in html and "2/5" in html and "Slow answer" in html
