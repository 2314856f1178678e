"""The customer's REST endpoints (docs/protocol.md, "Customer REST")."""

from __future__ import annotations

from datetime import time

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Presence
from conversations import services
from conversations.models import Conversation
from tests.factories import OperatingHoursFactory, OperatingIntervalFactory
from workstreams.models import DEFAULT_ATTACHMENT_TYPES

pytestmark = pytest.mark.django_db

W = "/api/v1/widget/{}/"


def test_widget_config_needs_no_credentials(api, persistent, live):
    response = api.get(W.format(persistent.widget_key))
    assert response.status_code == 200
    assert response.json() | {"title": None, "subtitle": None, "colour": None} == {
        "title": None,
        "subtitle": None,
        "colour": None,
        "mode": "persistent",
        "customer_can_end": False,
        "auth_required": True,
        "online": True,
        "next_opening": None,
        "language": "en",
        "prechat": [],
        "attachments": {"max_size": 10 * 1024 * 1024, "types": DEFAULT_ATTACHMENT_TYPES.splitlines()},
    }
    assert api.get(W.format(live.widget_key)).json()["customer_can_end"] is True


def test_an_offline_widget_says_when_it_opens(api, live):
    hours = OperatingHoursFactory(time_zone="UTC")
    OperatingIntervalFactory(
        hours=hours, weekday=(timezone.now().weekday() + 1) % 7, opens_at=time(8), closes_at=time(9)
    )
    live.operating_hours = hours
    live.save()
    body = api.get(W.format(live.widget_key)).json()
    assert body["online"] is False and body["next_opening"].endswith("08:00:00+00:00")


def test_unknown_widget_is_not_found(api):
    response = api.get(W.format("nope"))
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_visitor_tokens_for_anonymous_live_chat(api, live, persistent):
    response = api.post(W.format(live.widget_key) + "visitor/")
    assert response.status_code == 201 and response.json()["token"]
    refused = api.post(W.format(persistent.widget_key) + "visitor/")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_required"


def test_a_visitor_chats_with_its_token(api, live):
    token = api.post(W.format(live.widget_key) + "visitor/").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    sent = api.post(
        W.format(live.widget_key) + "conversation/messages/", {"client_id": "v1", "body": "Hi"}, format="json"
    )
    assert sent.status_code == 201
    assert api.get(W.format(live.widget_key) + "conversation/").json()["conversation"]["mode"] == "live"


def test_credentials_are_required_and_checked(api, persistent, as_customer):
    url = W.format(persistent.widget_key) + "conversation/"
    missing = api.get(url)
    assert missing.status_code == 401 and missing.json()["code"] == "authentication_required"
    api.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    bad = api.get(url)
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_token"
    expired = as_customer(exp=1).get(url)
    assert expired.status_code == 401 and expired.json()["code"] == "invalid_token"


def test_persistent_chat_from_first_message_through_waiting_return_end_and_close(
    persistent, as_customer, as_agent, alice, commit
):
    customer = as_customer()
    base = W.format(persistent.widget_key) + "conversation/"
    assert customer.get(base).json() == {"conversation": None}
    with commit():
        first = customer.post(base + "messages/", {"client_id": "c1", "body": "Hello"}, format="json")
    assert first.status_code == 201 and first.json()["seq"] == 1 and first.json()["client_id"] == "c1"
    conversation = customer.get(base).json()["conversation"]
    assert conversation["status"] == "active" and conversation["agent"]["name"] == "Alice"

    agent = as_agent(alice)
    url = f"/api/v1/agent/conversations/{conversation['id']}/"
    assert agent.post(url + "wait/").json()["status"] == "waiting"
    with commit():
        customer.post(base + "messages/", {"client_id": "c2", "body": "Back"}, format="json")
    back = agent.get(url).json()
    assert back["status"] == "active" and back["returned_at"] is not None and back["agent"]["id"] == alice.pk

    refused = customer.post(base + "end/")
    assert refused.status_code == 403 and refused.json()["code"] == "customer_cannot_end"
    assert agent.post(url + "end/").json()["status"] == "wrap_up"
    closed = agent.post(url + "close/", {"notes": "Sorted"}, format="json").json()
    assert closed["status"] == "closed" and closed["closed_at"]
    kinds = [m["kind"] for m in agent.get(url + "messages/").json()["messages"] if m["kind"]]
    assert kinds == ["agent_joined", "moved_to_waiting", "ended_by_agent"]


def test_live_chat_with_queue_messages_and_the_customers_end(api, live, alice, commit):
    alice.capacity = 50
    alice.save()
    live.workstream.queue.average_wait_seconds = 180
    live.workstream.queue.save()
    clients = []
    for n in range(3):
        client = APIClient()
        token = client.post(W.format(live.widget_key) + "visitor/").json()["token"]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        with commit():
            client.post(
                W.format(live.widget_key) + "conversation/messages/",
                {"client_id": f"v{n}", "body": "Hi"},
                format="json",
            )
        clients.append(client)
    third = clients[2].get(W.format(live.widget_key) + "conversation/messages/").json()["messages"]
    assert [m["kind"] for m in third if m["kind"]] == ["queue_position", "average_wait_time"]
    ended = clients[0].post(W.format(live.widget_key) + "conversation/end/")
    assert ended.status_code == 200 and ended.json()["status"] == "wrap_up"
    gone = clients[1].post(W.format(live.widget_key) + "conversation/end/")
    assert gone.json()["status"] in ("wrap_up", "closed")


def test_message_pages_by_seq_cursor(persistent, as_customer):
    customer = as_customer()
    base = W.format(persistent.widget_key) + "conversation/messages/"
    for n in range(6):
        customer.post(base, {"client_id": f"m{n}", "body": f"m{n}"}, format="json")
    # seq 1 = m0, 2 = offline_persistent, 3..7 = m1..m5
    latest = customer.get(base, {"limit": 3}).json()
    assert [m["seq"] for m in latest["messages"]] == [5, 6, 7] and latest["has_more"] is True
    older = customer.get(base, {"before_seq": 5, "limit": 3}).json()
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4]
    missed = customer.get(base, {"after_seq": 5}).json()
    assert [m["seq"] for m in missed["messages"]] == [6, 7] and missed["has_more"] is False
    for bad in ({"limit": 0}, {"limit": 201}, {"after_seq": -1}, {"after_seq": "x"}, {"before_seq": -1}):
        response = customer.get(base, bad)
        assert response.status_code == 400 and response.json()["code"] == "validation_error", bad


def test_a_resent_client_id_returns_200_and_the_same_message(persistent, as_customer):
    customer = as_customer()
    url = W.format(persistent.widget_key) + "conversation/messages/"
    first = customer.post(url, {"client_id": "same", "body": "Once"}, format="json")
    again = customer.post(url, {"client_id": "same", "body": "Once"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [("   ", 400, "body_empty"), ("x" * 4001, 413, "body_too_long"), (None, 400, "validation_error")],
)
def test_bad_bodies_get_their_code(persistent, as_customer, body, status, code):
    payload = {"client_id": "x"} if body is None else {"client_id": "x", "body": body}
    response = as_customer().post(W.format(persistent.widget_key) + "conversation/messages/", payload, format="json")
    assert response.status_code == status and response.json()["code"] == code


def test_malformed_json_is_a_400_with_a_code(persistent, as_customer):
    response = as_customer().post(
        W.format(persistent.widget_key) + "conversation/messages/", "{nope", content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_frame"


def test_live_chat_outside_hours_is_refused_with_409_and_the_next_opening(api, live):
    hours = OperatingHoursFactory(time_zone="UTC")
    OperatingIntervalFactory(
        hours=hours, weekday=(timezone.now().weekday() + 1) % 7, opens_at=time(8), closes_at=time(9)
    )
    live.operating_hours = hours
    live.save()
    token = api.post(W.format(live.widget_key) + "visitor/").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api.post(W.format(live.widget_key) + "conversation/messages/", {"body": "Hi"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "outside_operating_hours" and response.json()["next_opening"]


def test_one_customer_never_reaches_anothers_conversation(persistent, as_customer, live):
    base = W.format(persistent.widget_key) + "conversation/"
    as_customer("a").post(base + "messages/", {"client_id": "a1", "body": "secret of A"}, format="json")
    b = as_customer("b")
    assert b.get(base).json() == {"conversation": None}
    assert b.get(base + "messages/").json() == {"messages": [], "has_more": False}
    # A's valid token on another widget is not A there.
    other = as_customer("a").get(W.format(live.widget_key) + "conversation/")
    assert other.status_code == 401
    assert Conversation.objects.count() == 1


def test_customer_endpoints_ignore_an_admin_session_and_need_no_csrf(persistent, as_customer, superuser):
    client = as_customer()
    client.enforce_csrf_checks = True
    client.force_login(superuser)
    response = client.post(W.format(persistent.widget_key) + "conversation/messages/", {"body": "Hi"}, format="json")
    assert response.status_code == 201


def test_presence_offline_agent_leaves_the_conversation_open(persistent, as_customer, alice, commit):
    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    with commit():
        as_customer().post(W.format(persistent.widget_key) + "conversation/messages/", {"body": "Hi"}, format="json")
    assert (
        as_customer().get(W.format(persistent.widget_key) + "conversation/").json()["conversation"]["status"] == "open"
    )


def test_a_customer_sees_only_the_conversation_of_the_widgets_own_workstream(persistent, as_customer, queue):
    """One authentication setting may serve the widgets of several workstreams: the same customer
    has a separate conversation in each, and one widget never shows another workstream's."""
    from tests.factories import ChatWidgetFactory, WorkstreamFactory

    other = ChatWidgetFactory(
        widget_key="other-persistent",
        workstream=WorkstreamFactory(name="Other", queue=queue, persistent_mode=True),
        authentication_setting=persistent.authentication_setting,
    )
    carol = as_customer("carol")
    carol.post(W.format(persistent.widget_key) + "conversation/messages/", {"body": "about my order"}, format="json")
    assert carol.get(W.format(other.widget_key) + "conversation/").json() == {"conversation": None}
    assert carol.get(W.format(other.widget_key) + "conversation/messages/").json()["messages"] == []
    carol.post(W.format(other.widget_key) + "conversation/messages/", {"body": "another matter"}, format="json")
    first = carol.get(W.format(persistent.widget_key) + "conversation/").json()["conversation"]
    second = carol.get(W.format(other.widget_key) + "conversation/").json()["conversation"]
    assert first["id"] != second["id"]
