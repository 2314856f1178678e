"""The agent inbox: server-rendered pages and htmx partials over the engine's services."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import Presence
from conversations import services
from conversations.models import Conversation, Status
from tests import files
from tests.factories import AgentFactory, ChatWidgetFactory, CustomerFactory, UserFactory, WorkstreamFactory
from workstreams.models import DistributionMode, QuickReply

HX = {"HTTP_HX_REQUEST": "true"}


def start(widget, customer=None, body="Hello"):
    customer = customer or CustomerFactory(
        authentication_setting=widget.authentication_setting,
        widget=None if widget.authentication_setting_id else widget,
    )
    result = services.customer_message_send(widget=widget, customer=customer, body=body)
    return Conversation.objects.get(pk=result.conversation.pk)


def section(html: str, key: str) -> str:
    match = re.search(rf'<section class="group group-{key}".*?</section>', html, re.S)
    assert match, f"no section {key}"
    return match.group(0)


def test_the_inbox_sends_a_visitor_to_the_login_page(client, db):
    response = client.get(reverse("agents:inbox"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_agent_signs_in_on_the_login_page_and_lands_in_the_inbox(client, alice):
    alice.user.set_password("pw-for-alice")
    alice.user.save()
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-for-alice"})
    assert response.status_code == 302
    assert response["Location"] == reverse("agents:inbox")
    assert client.get(reverse("agents:inbox")).status_code == 200


def test_a_user_who_is_not_an_agent_may_not_use_the_inbox(client, db):
    client.force_login(UserFactory(username="mallory"))
    assert client.get(reverse("agents:inbox")).status_code == 403


def test_the_inbox_groups_my_conversations_active_returned_waiting_and_wrap_up(alice_client, alice, persistent, commit):
    alice.capacity = 1000
    alice.save()
    with commit():
        active = start(persistent, body="I am active")
        returned = start(persistent, body="I will come back")
        waiting = start(persistent, body="I wait")
        ended = start(persistent, body="I am done")
    for conversation in (active, returned, waiting, ended):
        conversation.refresh_from_db()
        assert conversation.agent_id == alice.pk
    with commit():
        services.conversation_wait(conversation_id=returned.pk, agent=alice)
        services.conversation_wait(conversation_id=waiting.pk, agent=alice)
        services.conversation_end(conversation_id=ended.pk, agent=alice)
        services.customer_message_send(widget=persistent, customer=returned.customer, body="I am back")

    html = alice_client.get(reverse("agents:inbox")).content.decode()

    assert f'data-conversation-id="{active.pk}"' in section(html, "active")
    assert f'data-conversation-id="{returned.pk}"' in section(html, "returned")
    assert f'data-conversation-id="{returned.pk}"' not in section(html, "active")
    assert f'data-conversation-id="{waiting.pk}"' in section(html, "waiting")
    assert f'data-conversation-id="{ended.pk}"' in section(html, "wrap_up")


def test_a_row_shows_the_last_message_and_counts_unread_customer_messages_until_opened(
    alice_client, alice, persistent, commit
):
    with commit():
        conversation = start(persistent, body="First question")
    services.customer_message_send(widget=persistent, customer=conversation.customer, body="Second question")

    row = section(alice_client.get(reverse("agents:inbox")).content.decode(), "active")
    assert "Second question" in row
    assert re.search(r'class="badge"[^>]*>2<', row)

    alice_client.get(reverse("agents:conversation", args=[conversation.pk]))  # reading it

    row = section(alice_client.get(reverse("agents:inbox")).content.decode(), "active")
    assert 'class="badge"' not in row


def test_a_row_of_a_message_with_only_files_shows_the_first_files_name(alice_client, alice, persistent, commit):
    with commit():
        conversation = start(persistent, body="First question")
    customer = conversation.customer
    photo = services.customer_attachment_upload(
        widget=persistent, customer=customer, upload=SimpleUploadedFile("parcel.png", files.png())
    )
    services.customer_message_send(widget=persistent, customer=customer, body="", attachments=[str(photo.pk)])
    row = section(alice_client.get(reverse("agents:inbox")).content.decode(), "active")
    assert "📎 parcel.png" in row


def test_the_header_shows_presence_capacity_and_customers_waiting_in_my_queues(alice_client, alice, live, commit):
    with commit():
        start(live)  # alice takes it: 50 of 100 units
    services.agent_presence_set(agent=alice, presence=Presence.AWAY)
    with commit():
        start(live)
        start(live)  # nobody to take these two

    html = alice_client.get(reverse("agents:inbox")).content.decode()

    assert re.search(r'<option value="away" selected>', html)
    assert re.search(r'<meter id="capacity-meter"[^>]*max="100" value="50"', html)
    assert re.search(r'id="waiting-count"[^>]*>2<', html)


def test_the_inbox_page_runs_a_constant_number_of_queries_however_many_conversations(alice_client, alice, live):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = alice_client.get(reverse("agents:inbox"))
        assert response.status_code == 200
        return len(queries)

    def add_conversations(n: int) -> None:
        for _ in range(n):
            conversation = start(live)
            Conversation.objects.filter(pk=conversation.pk).update(status=Status.ACTIVE, agent=alice)
            services.customer_message_send(widget=live, customer=conversation.customer, body="More")

    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)  # nothing assigned by the engine
    add_conversations(2)
    few = count_queries()
    add_conversations(198)
    many = count_queries()

    assert Conversation.objects.filter(agent=alice, status=Status.ACTIVE).count() == 200
    assert many == few


def test_opening_a_conversation_shows_its_history_customer_and_earlier_conversations(
    alice_client, alice, persistent, commit
):
    with commit():
        first = start(persistent, body="My first visit")
    with commit():
        services.conversation_end(conversation_id=first.pk, agent=alice)
        services.conversation_close(conversation_id=first.pk, agent=alice, notes="Sent a new parcel")
    customer = first.customer
    customer.email = "carol@example.com"
    customer.context = {"plan": "gold", "order": "10482"}
    customer.save()
    with commit():
        second = start(persistent, customer=customer, body="Back again")

    html = alice_client.get(reverse("agents:conversation", args=[second.pk])).content.decode()

    assert "Back again" in html
    assert 'data-kind="agent_joined"' in html
    assert "carol@example.com" in html
    assert "Yes (signed by the website)" in html
    assert "<dt>plan</dt><dd>gold</dd>" in html
    assert reverse("agents:history", args=[first.pk]) in html
    history = alice_client.get(reverse("agents:history", args=[first.pk]), **HX).content.decode()
    assert "My first visit" in history
    assert "Sent a new parcel" in history


def test_another_agents_conversation_is_not_found(client, alice, bob, live, commit):
    with commit():
        conversation = start(live)  # alice or bob
    conversation.refresh_from_db()
    owner, other = (alice, bob) if conversation.agent_id == alice.pk else (bob, alice)
    client.force_login(other.user)
    assert client.get(reverse("agents:conversation", args=[conversation.pk])).status_code == 404
    assert client.get(reverse("agents:transcript", args=[conversation.pk])).status_code == 404
    assert client.post(reverse("agents:action", args=[conversation.pk, "end"]), **HX).status_code == 404
    conversation.refresh_from_db()
    assert conversation.status == Status.ACTIVE
    assert conversation.agent_id == owner.pk


def test_wait_resume_end_and_close_go_through_the_engine(alice_client, alice, persistent, commit):
    with commit():
        conversation = start(persistent)

    def act(action, **data):
        with commit():
            response = alice_client.post(reverse("agents:action", args=[conversation.pk, action]), data, **HX)
        conversation.refresh_from_db()
        return response

    assert act("wait").status_code == 200
    assert conversation.status == Status.WAITING
    assert act("resume").status_code == 200
    assert conversation.status == Status.ACTIVE
    assert act("end").status_code == 200
    assert conversation.status == Status.WRAP_UP
    assert act("close", notes="Refunded").status_code == 200
    assert conversation.status == Status.CLOSED
    assert conversation.wrap_up_notes == "Refunded"


def test_a_refused_action_answers_with_its_error_code_not_a_server_error(alice_client, alice, persistent, commit):
    with commit():
        conversation = start(persistent)
    response = alice_client.post(reverse("agents:action", args=[conversation.pk, "close"]), **HX)
    assert response.status_code == 409
    assert 'data-code="invalid_transition"' in response.content.decode()
    response = alice_client.post(reverse("agents:action", args=[conversation.pk, "transfer"]), {"target": "x"}, **HX)
    assert response.status_code == 400
    assert 'data-code="validation_error"' in response.content.decode()
    assert alice_client.post(reverse("agents:action", args=[conversation.pk, "explode"]), **HX).status_code == 404


def test_without_javascript_an_action_redirects_with_a_message(alice_client, alice, persistent, commit):
    with commit():
        conversation = start(persistent)
    response = alice_client.post(reverse("agents:action", args=[conversation.pk, "close"]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("agents:conversation", args=[conversation.pk])
    assert "not in a state that allows this" in response.content.decode()


def test_transfer_to_another_agent_or_to_a_queue(alice_client, alice, bob, live, queue, commit):
    services.agent_presence_set(agent=bob, presence=Presence.OFFLINE)
    with commit():
        conversation = start(live)
    conversation.refresh_from_db()
    assert conversation.agent_id == alice.pk
    services.agent_presence_set(agent=bob, presence=Presence.AVAILABLE)
    with commit():
        response = alice_client.post(
            reverse("agents:action", args=[conversation.pk, "transfer"]), {"target": f"agent:{bob.pk}"}, **HX
        )
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("agents:inbox")
    conversation.refresh_from_db()
    assert conversation.agent_id == bob.pk

    alice_client.force_login(bob.user)
    services.agent_presence_set(agent=alice, presence=Presence.OFFLINE)
    services.agent_presence_set(agent=bob, presence=Presence.OFFLINE)
    with commit():
        alice_client.post(
            reverse("agents:action", args=[conversation.pk, "transfer"]), {"target": f"queue:{queue.pk}"}, **HX
        )
    conversation.refresh_from_db()
    assert conversation.status == Status.OPEN
    assert conversation.agent is None


def test_an_agent_picks_from_the_queue_of_a_pick_workstream(alice_client, alice, queue, commit):
    widget = ChatWidgetFactory(
        workstream=WorkstreamFactory(name="Email-like", queue=queue, distribution_mode=DistributionMode.PICK)
    )
    with commit():
        conversation = start(widget, body="Anyone?")
    assert conversation.status == Status.OPEN

    html = alice_client.get(reverse("agents:inbox")).content.decode()
    assert f'data-conversation-id="{conversation.pk}"' in section(html, "queue")
    pane = alice_client.get(reverse("agents:conversation", args=[conversation.pk]), **HX).content.decode()
    assert "Pick" in pane
    with commit():
        alice_client.post(reverse("agents:action", args=[conversation.pk, "pick"]), **HX)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, alice.pk)


def test_picking_another_agents_conversation_in_the_inbox_is_not_found(alice, bob, queue, commit):
    """Issue #19: the inbox's pick form answered invalid_transition (409) for the conversation
    alice picked in a queue bob shares; now not_found (404), in the toast and without htmx."""
    from django.contrib.messages import get_messages
    from django.test import Client

    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, distribution_mode=DistributionMode.PICK))
    with commit():
        conversation = start(widget, body="Anyone?")
    services.conversation_pick(conversation_id=conversation.pk, agent=alice)
    client = Client()
    client.force_login(bob.user)
    url = reverse("agents:action", args=[conversation.pk, "pick"])
    toast = client.post(url, **HX)
    assert toast.status_code == 404 and 'data-code="not_found"' in toast.content.decode()
    page = client.post(url)
    assert page.status_code == 302 and [str(m) for m in get_messages(page.wsgi_request)] == ["Not found."]
    conversation.refresh_from_db()
    assert conversation.agent_id == alice.pk


def test_the_presence_selector_changes_presence_through_the_engine(alice_client, alice):
    response = alice_client.post(reverse("agents:presence"), {"presence": "busy_dnd"}, **HX)
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.presence == Presence.BUSY_DND
    assert alice_client.post(reverse("agents:presence"), {"presence": "asleep"}, **HX).status_code == 400


def test_quick_replies_of_the_workstream_are_offered_in_the_composer(alice_client, alice, persistent, commit):
    QuickReply.objects.create(workstream=persistent.workstream, title="Greeting", body="Hi, how can I help?")
    with commit():
        conversation = start(persistent)
    pane = alice_client.get(reverse("agents:conversation", args=[conversation.pk]), **HX).content.decode()
    assert 'data-body="Hi, how can I help?"' in pane
    assert ">Greeting</button>" in pane


def test_the_transcript_downloads_as_plain_text(alice_client, alice, persistent, commit):
    with commit():
        conversation = start(persistent, body="Where is my parcel?\nOrder 10482")
    with commit():
        services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="On its way!")
    response = alice_client.get(reverse("agents:transcript", args=[conversation.pk]))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="conversation-{conversation.pk}-')
    text = response.content.decode()
    assert f"Conversation #{conversation.pk}" in text
    assert "    Where is my parcel?\n    Order 10482" in text
    assert "Alice" in text and "On its way!" in text
    assert text.index("Where is my parcel?") < text.index("On its way!")


def test_marking_read_only_moves_forward_and_only_for_my_conversations(alice_client, alice, bob, live, commit):
    services.agent_presence_set(agent=bob, presence=Presence.OFFLINE)
    with commit():
        conversation = start(live)
    url = reverse("agents:mark-read", args=[conversation.pk])
    assert alice_client.post(url, {"seq": "2"}).status_code == 204
    assert alice_client.post(url, {"seq": "1"}).status_code == 204
    conversation.refresh_from_db()
    assert conversation.agent_read_seq == 2
    alice_client.post(url, {"seq": "999"})
    conversation.refresh_from_db()
    assert conversation.agent_read_seq == conversation.last_seq
    assert alice_client.post(url, {"seq": "-1"}).status_code == 400
    alice_client.force_login(bob.user)
    Conversation.objects.filter(pk=conversation.pk).update(agent_read_seq=0)
    alice_client.post(url, {"seq": "2"})
    conversation.refresh_from_db()
    assert conversation.agent_read_seq == 0


def test_marking_someone_elses_conversation_read_is_not_found(client, alice, bob, live, commit):
    """Found by the authorization matrix: it answered 204 (and did nothing) where every other
    path says the conversation does not exist."""
    services.agent_presence_set(agent=bob, presence=Presence.OFFLINE)
    with commit():
        conversation = start(live)
    conversation.refresh_from_db()
    assert conversation.agent_id == alice.pk
    client.force_login(bob.user)
    response = client.post(reverse("agents:mark-read", args=[conversation.pk]), {"seq": "1"})
    assert response.status_code == 404
    missing = client.post(reverse("agents:mark-read", args=[conversation.pk + 1000]), {"seq": "1"})
    assert missing.status_code == 404


@pytest.mark.parametrize("language, expected", [("en", "Customer returned"), ("da", "Kunden er vendt tilbage")])
def test_the_inbox_speaks_english_and_danish(alice_client, language, expected):
    html = alice_client.get(reverse("agents:inbox"), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert expected in html


def test_an_agent_without_queues_sees_an_empty_inbox(client, db):
    agent = AgentFactory(user__username="newbie")
    client.force_login(agent.user)
    html = client.get(reverse("agents:inbox")).content.decode()
    assert "Choose a conversation on the left." in html
