"""The pre-chat form (docs/protocol.md, "Pre-chat form"): configured per workstream, carried by
the widget configuration in the widget's language, answered with the message that starts a
conversation, checked by the engine (every bad answer a validation_error naming its question,
nothing stored), stored on the conversation, shown to agents, filling a visitor's name and email."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from conversations import services
from conversations.errors import ValidationFailed
from conversations.models import Conversation, Customer, Message
from workstreams.models import PrechatField, PrechatFieldType

pytestmark = pytest.mark.django_db

LIVE = "/api/v1/widget/live/"


@pytest.fixture(autouse=True)
def form(live):
    workstream = live.workstream
    return [
        PrechatField.objects.create(
            workstream=workstream, name="name", label="Your name", label_da="Dit navn", required=True, position=0
        ),
        PrechatField.objects.create(
            workstream=workstream,
            name="email",
            label="Your email",
            label_da="Din e-mail",
            type=PrechatFieldType.EMAIL,
            required=True,
            position=1,
        ),
        PrechatField.objects.create(
            workstream=workstream,
            name="topic",
            label="Topic",
            type=PrechatFieldType.CHOICE,
            choices="Orders\nReturns\nOther",
            position=2,
        ),
        PrechatField.objects.create(
            workstream=workstream, name="order", label="Order number", type=PrechatFieldType.TEXTAREA, position=3
        ),
    ]


@pytest.fixture
def visitor_client(api, live):
    token = api.post(f"{LIVE}visitor/").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def start(client, prechat, body="Hello"):
    return client.post(f"{LIVE}conversation/messages/", {"body": body, "prechat": prechat}, format="json")


GOOD = {"name": " Vera Visitor ", "email": "vera@example.com", "topic": "Returns"}


def test_the_widget_configuration_carries_the_form_in_the_widgets_language(api, live):
    questions = api.get(LIVE).json()["prechat"]
    assert questions[0] == {"name": "name", "label": "Your name", "type": "text", "required": True, "choices": []}
    assert questions[2] == {
        "name": "topic",
        "label": "Topic",
        "type": "choice",
        "required": False,
        "choices": ["Orders", "Returns", "Other"],
    }
    live.language = "da"
    live.save()
    assert [q["label"] for q in api.get(LIVE).json()["prechat"]] == ["Dit navn", "Din e-mail", "Topic", "Order number"]


def test_a_workstream_without_a_form_has_an_empty_one(api, persistent):
    assert api.get("/api/v1/widget/persistent/").json()["prechat"] == []


def test_the_answers_start_the_conversation_fill_the_visitor_and_reach_agents(visitor_client, as_agent, alice):
    response = start(visitor_client, GOOD)
    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["conversation_id"])
    assert conversation.prechat == {"name": "Vera Visitor", "email": "vera@example.com", "topic": "Returns"}
    customer = conversation.customer
    assert (customer.display_name, customer.email) == ("Vera Visitor", "vera@example.com")
    assert Message.objects.get(conversation=conversation, sender="customer").author == "Vera Visitor"
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    got = as_agent(alice).get(f"/api/v1/agent/conversations/{conversation.pk}/").json()
    assert got["prechat"] == conversation.prechat and got["customer"]["name"] == "Vera Visitor"


@pytest.mark.parametrize(
    ("prechat", "field"),
    [
        (None, "name"),
        ({}, "email"),
        ({**GOOD, "name": "   "}, "name"),
        ({**GOOD, "email": "not-an-address"}, "email"),
        ({**GOOD, "topic": "Complaints"}, "topic"),
        ({**GOOD, "colour": "blue"}, "colour"),
        ({**GOOD, "name": 42}, "name"),
        ({**GOOD, "name": ["Vera"]}, "name"),
        ({**GOOD, "name": "x" * 201}, "name"),
        ({**GOOD, "order": "1" * 2001}, "order"),
        ({**GOOD, "name": "a\x00b"}, "name"),
        ("Vera", "prechat"),
        (["Vera"], "prechat"),
    ],
)
def test_a_bad_answer_is_a_validation_error_naming_its_question_and_nothing_is_stored(visitor_client, prechat, field):
    response = start(visitor_client, prechat)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error" and field in response.json()["fields"]
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert Customer.objects.get().display_name == ""


def test_only_the_message_that_starts_a_conversation_is_asked(visitor_client):
    assert start(visitor_client, GOOD).status_code == 201
    later = start(visitor_client, {"nonsense": 1}, body="And another thing")
    assert later.status_code == 201
    assert Conversation.objects.get().prechat["topic"] == "Returns"


def test_a_signed_in_customer_keeps_the_name_its_website_gave(persistent, customer):
    PrechatField.objects.create(workstream=persistent.workstream, name="name", label="Name", required=True)
    PrechatField.objects.create(
        workstream=persistent.workstream, name="email", label="Email", type=PrechatFieldType.EMAIL
    )
    services.customer_message_send(
        widget=persistent, customer=customer, body="Hi", prechat={"name": "Someone Else", "email": "c@example.com"}
    )
    customer.refresh_from_db()
    assert customer.display_name == "Carol"  # from the website's token
    assert customer.email == "c@example.com"  # the token gave none


def test_offline_messages_do_not_need_the_form(live, queue):
    from workstreams.models import OperatingHours

    queue.operating_hours = OperatingHours.objects.create(name="Never", time_zone="UTC")
    queue.save()
    result = services.customer_offline_message(
        widget=live, customer=None, name="Olga", email="olga@example.com", body="Call me"
    )
    assert result.conversation.prechat == {}


def test_the_engine_says_every_problem_at_once(live, visitor):
    with pytest.raises(ValidationFailed) as raised:
        services.customer_message_send(widget=live, customer=visitor, body="Hi", prechat={"email": "nope"})
    assert set(raised.value.extra["fields"]) == {"name", "email"}


def test_the_inbox_shows_the_answers_in_the_customer_panel(client, visitor_client, alice):
    conversation_id = start(visitor_client, {**GOOD, "order": "#10482"}).json()["conversation_id"]
    services.conversation_assign(conversation_id=conversation_id, agent=alice)
    client.force_login(alice.user)
    html = client.get(f"/agent/conversations/{conversation_id}/").content.decode()
    panel = html[html.index("Pre-chat form") :]
    assert panel.index("Your name") < panel.index("Vera Visitor") < panel.index("Topic") < panel.index("Returns")
    assert "Order number" in panel and "#10482" in panel


def test_the_admin_refuses_a_choice_without_answers_and_an_email_question_of_another_type(live):
    with pytest.raises(ValidationError, match="at least one answer"):
        PrechatField(workstream=live.workstream, name="x", label="X", type=PrechatFieldType.CHOICE).full_clean()
    with pytest.raises(ValidationError, match="email address"):
        PrechatField(workstream=live.workstream, name="email", label="Email").full_clean()
