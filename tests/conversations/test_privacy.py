"""Privacy requests: a customer's data can be exported and erased, from the command line and
the admin, through conversations.privacy; each is audited without the data."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from conversations import privacy, services
from conversations.errors import ConversationsOngoing, NotFound, ValidationFailed
from conversations.models import Attachment, Conversation, Customer, Message, Status
from conversations.selectors import agent_capacity
from tests import files
from tests.factories import AuthenticationSettingFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def say(widget, customer, body):
    return services.customer_message_send(widget=widget, customer=customer, body=body).conversation


@pytest.fixture
def history(persistent, customer, alice):
    """Carol's closed conversation (with wrap-up notes) and her next one, still open."""
    customer.email = "carol@example.com"
    customer.context = {"plan": "gold"}
    customer.save()
    first = say(persistent, customer, "My order 1234 never arrived")
    services.conversation_assign(conversation_id=first.pk, agent=alice)
    services.agent_message_send(conversation_id=first.pk, agent=alice, body="Sorry Carol, resending it")
    services.conversation_end(conversation_id=first.pk, agent=alice)
    services.conversation_close(conversation_id=first.pk, agent=alice, notes="Carol: reshipped")
    second = say(persistent, customer, "It came, thanks")
    return first, second


# --- Finding the customer -----------------------------------------------------------------------


def test_a_customer_is_found_by_id_external_id_or_email(customer, other_customer):
    customer.email = "Carol@Example.com"
    customer.save()
    assert privacy.customers_matching(str(customer.pk)) == [customer]
    assert privacy.customers_matching(customer.external_id) == [customer]
    assert privacy.customers_matching("carol@example.COM") == [customer]


def test_an_email_or_external_id_used_on_several_sites_names_every_such_customer(customer):
    customer.email = "carol@example.com"
    customer.save()
    elsewhere = CustomerFactory(
        authentication_setting=AuthenticationSettingFactory(), external_id=customer.external_id, email=""
    )
    also = CustomerFactory(authentication_setting=AuthenticationSettingFactory(), email="carol@example.com")
    assert privacy.customers_matching(customer.external_id) == [customer, elsewhere]
    assert privacy.customers_matching("carol@example.com", by="email") == [customer, also]


def test_an_identifier_that_means_different_customers_is_ambiguous(customer, other_customer):
    other_customer.external_id = str(customer.pk)
    other_customer.save()
    with pytest.raises(ValidationFailed, match="Ambiguous"):
        privacy.customers_matching(str(customer.pk))
    assert privacy.customers_matching(str(customer.pk), by="id") == [customer]
    assert privacy.customers_matching(str(customer.pk), by="external_id") == [other_customer]


@pytest.mark.parametrize("identifier", ["nobody", "999999", "nobody@example.com"])
def test_an_unknown_customer_is_not_found(customer, identifier):
    with pytest.raises(NotFound):
        privacy.customers_matching(identifier)


@pytest.mark.parametrize("identifier", ["", "   ", "a\x00b", "9" * 40])
def test_a_bad_identifier_is_a_validation_error_not_a_crash(customer, identifier):
    with pytest.raises((ValidationFailed, NotFound)):
        privacy.customers_matching(identifier)


# --- Export -------------------------------------------------------------------------------------


def test_the_export_holds_the_customer_and_every_conversation_with_its_whole_history(
    customer, other_customer, persistent, history
):
    say(persistent, other_customer, "Dave's secret")
    document = privacy.customers_export(customers=[customer], actor="test")
    assert (document["format"], document["version"]) == ("omnichannel.customer-export", 1)
    [exported] = document["customers"]
    assert exported["id"] == customer.pk and exported["external_id"] == customer.external_id
    assert (exported["name"], exported["email"]) == ("Carol", "carol@example.com")
    assert exported["context"] == {"plan": "gold"}
    assert exported["authentication_setting"]["name"] == "Shop"
    first, second = history
    assert [c["id"] for c in exported["conversations"]] == [first.pk, second.pk]
    closed = exported["conversations"][0]
    assert closed["status"] == "closed" and closed["wrap_up_notes"] == "Carol: reshipped"
    bodies = [m["body"] for m in closed["messages"]]
    assert bodies[0] == "My order 1234 never arrived" and "Sorry Carol, resending it" in bodies
    assert [m["seq"] for m in closed["messages"]] == list(range(1, len(bodies) + 1))
    assert exported["conversations"][1]["messages"][0]["body"] == "It came, thanks"
    assert "Dave's secret" not in json.dumps(document)


def test_an_export_is_audited_with_ids_and_counts_but_no_data(customer, history, caplog):
    with caplog.at_level(logging.DEBUG):
        privacy.customers_export(customers=[customer], actor="admin:sam")
    [record] = [r for r in caplog.records if r.name == "omnichannel.audit"]
    line = record.getMessage()
    assert f"customers={customer.pk}" in line and "conversations=2" in line and "by=admin:sam" in line
    for secret in ("Carol", "carol@example.com", customer.external_id, "order 1234", "reshipped", "gold"):
        assert secret not in caplog.text


# --- Erasure ------------------------------------------------------------------------------------


def test_erasing_deletes_the_customer_every_conversation_and_message_and_nothing_else(
    customer, other_customer, persistent, history, alice
):
    first, second = history
    services.conversation_force_close(conversation_id=second.pk)
    kept = say(persistent, other_customer, "Dave stays")
    result = privacy.customer_erase(customer_id=customer.pk, actor="test")
    assert (result.conversations, result.closed) == (2, 0) and result.messages >= 4
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert not Conversation.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert not Message.objects.filter(conversation_id__in=[first.pk, second.pk]).exists()
    assert list(Conversation.objects.all()) == [kept] and kept.messages.get().body == "Dave stays"
    alice.refresh_from_db()  # the agent who handled it stays


def test_a_customer_with_a_conversation_not_closed_yet_is_refused_and_nothing_is_erased(customer, history):
    _first, second = history
    with pytest.raises(ConversationsOngoing) as refused:
        privacy.customer_erase(customer_id=customer.pk, actor="test")
    assert refused.value.code == "conversation_ongoing" and refused.value.extra == {"ongoing": [second.pk]}
    assert Conversation.objects.filter(customer=customer).count() == 2
    assert Message.objects.filter(conversation__customer=customer).exists()


@pytest.mark.parametrize("status", ["active", "waiting", "wrap_up"])
def test_close_ongoing_closes_through_the_engine_frees_the_agent_then_erases(
    customer, persistent, alice, commit, broadcasts, status
):
    with commit():
        conversation = say(persistent, customer, "Hello")
        services.conversation_assign(conversation_id=conversation.pk, agent=alice)
        if status == "waiting":
            services.conversation_wait(conversation_id=conversation.pk, agent=alice)
        if status == "wrap_up":
            services.conversation_end(conversation_id=conversation.pk, agent=alice)
    assert Conversation.objects.get().status == status
    broadcasts.clear()
    with commit():
        result = privacy.customer_erase(customer_id=customer.pk, actor="test", close_ongoing=True)
    assert result.closed == 1 and not Customer.objects.exists() and not Conversation.objects.exists()
    closed_frames = [
        frame
        for group, frame in broadcasts
        if group == f"customer.{customer.pk}.{persistent.workstream_id}" and frame["type"] == "conversation"
    ]
    assert closed_frames and closed_frames[-1]["conversation"]["status"] == Status.CLOSED
    assert agent_capacity(alice)["used"] == 0


def test_an_erasure_is_audited_with_ids_and_counts_but_no_data(customer, history, caplog):
    services.conversation_force_close(conversation_id=history[1].pk)
    with caplog.at_level(logging.DEBUG):
        privacy.customer_erase(customer_id=customer.pk, actor="manage.py:ops")
    [record] = [r for r in caplog.records if r.name == "omnichannel.audit"]
    assert f"customer={customer.pk}" in record.getMessage() and "by=manage.py:ops" in record.getMessage()
    for secret in ("Carol", "carol@example.com", customer.external_id, "order 1234", "reshipped"):
        assert secret not in caplog.text


def test_erasing_a_customer_that_is_gone_is_not_found(db):
    with pytest.raises(NotFound):
        privacy.customer_erase(customer_id=424242, actor="test")


def test_after_erasure_the_same_sub_is_a_new_customer_with_no_history(customer, persistent, history):
    from conversations.customer_tokens import authenticate_customer
    from tests.realtime.conftest import customer_token

    services.conversation_force_close(conversation_id=history[1].pk)
    privacy.customer_erase(customer_id=customer.pk, actor="test")
    again = authenticate_customer(persistent, customer_token(persistent.authentication_setting, customer.external_id))
    assert again.pk != customer.pk and not again.conversations.exists()


# --- The management commands --------------------------------------------------------------------


def test_customer_export_writes_json_to_standard_output(customer, history, capsys):
    call_command("customer_export", customer.external_id)
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["customers"][0]["id"] == customer.pk
    assert f"customer #{customer.pk}" in err  # the summary stays out of the JSON


def test_customer_export_writes_a_new_file_only_its_owner_can_read(customer, history, tmp_path):
    target = tmp_path / "carol.json"
    call_command("customer_export", "carol@example.com", "--output", str(target))
    assert json.loads(target.read_text())["customers"][0]["email"] == "carol@example.com"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    with pytest.raises(CommandError, match="exists"):
        call_command("customer_export", "carol@example.com", "--output", str(target))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["nobody"], "No customer"), (["x", "--by", "id"], "number"), (["   "], "Name the customer")],
)
def test_customer_export_explains_a_bad_identifier(customer, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("customer_export", *arguments)


def test_customer_erase_without_yes_only_shows_what_would_go(customer, history, capsys):
    services.conversation_force_close(conversation_id=history[1].pk)
    with pytest.raises(CommandError, match="--yes"):
        call_command("customer_erase", str(customer.pk))
    assert "2 conversation(s), 6 message(s)" in capsys.readouterr().out
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_customer_erase_refuses_ongoing_conversations_unless_asked_to_close_them(customer, history, capsys):
    with pytest.raises(CommandError, match="--close-ongoing"):
        call_command("customer_erase", str(customer.pk), "--yes")
    assert Customer.objects.filter(pk=customer.pk).exists()
    call_command("customer_erase", str(customer.pk), "--yes", "--close-ongoing")
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert "1 closed first" in capsys.readouterr().out


# --- The admin actions --------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="sam", is_staff=True, is_superuser=True))
    return client


CHANGELIST = "admin:conversations_customer_changelist"


def test_the_export_action_downloads_the_selected_customers_json(admin_client, customer, other_customer, history):
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "export_data", "_selected_action": [customer.pk, other_customer.pk]}
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="customer-export-')
    assert "no-store" in response["Cache-Control"]
    document = json.loads(response.content)
    assert [c["id"] for c in document["customers"]] == sorted([customer.pk, other_customer.pk])


def test_the_erase_action_asks_for_confirmation_then_erases_and_logs_without_the_name(admin_client, customer, history):
    services.conversation_force_close(conversation_id=history[1].pk)
    data = {"action": "erase", "_selected_action": [customer.pk]}
    response = admin_client.post(reverse(CHANGELIST), data)
    assert response.status_code == 200 and b"Yes, erase them" in response.content and b"Carol" in response.content
    assert Customer.objects.filter(pk=customer.pk).exists()
    response = admin_client.post(reverse(CHANGELIST), {**data, "post": "yes"}, follow=True)
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert "Erased 1 customer." in response.content.decode()
    entry = LogEntry.objects.get(action_flag=DELETION)
    assert entry.object_repr == f"customer #{customer.pk}" and "Carol" not in entry.change_message


def test_the_erase_action_keeps_customers_with_ongoing_conversations_unless_told_to_close_them(
    admin_client, customer, history
):
    data = {"action": "erase", "_selected_action": [customer.pk]}
    page = admin_client.post(reverse(CHANGELIST), data).content.decode()
    assert "Not closed yet:" in page and 'name="close_ongoing"' in page
    response = admin_client.post(reverse(CHANGELIST), {**data, "post": "yes"}, follow=True)
    assert "was not erased" in response.content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()
    admin_client.post(reverse(CHANGELIST), {**data, "post": "yes", "close_ongoing": "yes"})
    assert not Customer.objects.filter(pk=customer.pk).exists()


def test_a_supervisor_without_the_permissions_sees_neither_action(client, customer):
    client.force_login(UserFactory(username="sue", is_staff=True))
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    form = response.context["action_form"]
    choices = [value for value, _label in form.fields["action"].choices] if form else []
    assert "export_data" not in choices and "erase" not in choices
    response = client.post(reverse(CHANGELIST), {"action": "erase", "_selected_action": [customer.pk], "post": "yes"})
    assert Customer.objects.filter(pk=customer.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_message_from_a_socket_still_open_after_the_erasure_is_refused_and_nothing_is_stored(persistent):
    from django.db import DatabaseError

    from tests.factories import CustomerFactory as Customers

    carol = Customers(authentication_setting=persistent.authentication_setting, display_name="Carol")
    services.conversation_force_close(conversation_id=say(persistent, carol, "Hello").pk)
    privacy.customer_erase(customer_id=carol.pk, actor="test")
    # The consumer of a socket authenticated before the erasure still holds ``carol``.
    with pytest.raises(DatabaseError):
        say(persistent, carol, "Still there?")
    assert not Conversation.objects.exists() and not Message.objects.exists()


# --- Attachments ------------------------------------------------------------------------------------


def _attach(persistent, customer, alice, conversation):
    """Carol sends a photo; Alice answers with a PDF; Carol uploads a file she never sends."""
    photo = services.customer_attachment_upload(
        widget=persistent, customer=customer, upload=SimpleUploadedFile("parcel.png", files.png())
    )
    services.customer_message_send(widget=persistent, customer=customer, body="", attachments=[str(photo.pk)])
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    label = services.agent_attachment_upload(
        conversation_id=conversation.pk, agent=alice, upload=SimpleUploadedFile("label.pdf", files.PDF)
    )
    services.agent_message_send(conversation_id=conversation.pk, agent=alice, body="Label", attachments=[str(label.pk)])
    unsent = services.customer_attachment_upload(
        widget=persistent, customer=customer, upload=SimpleUploadedFile("draft.txt", files.TEXT)
    )
    return photo, label, unsent


def test_the_export_holds_every_file_of_the_customer_with_its_bytes(customer, persistent, alice, history):
    _first, second = history
    photo, _label, _unsent = _attach(persistent, customer, alice, second)
    document = privacy.customers_export(customers=[customer], actor="test")
    [exported] = document["customers"]
    by_name = {a["name"]: a for a in exported["attachments"]}
    assert set(by_name) == {"parcel.png", "label.pdf", "draft.txt"}
    assert base64.b64decode(by_name["parcel.png"]["content_base64"]) == files.png()
    assert base64.b64decode(by_name["label.pdf"]["content_base64"]) == files.PDF
    assert (by_name["label.pdf"]["uploaded_by"], by_name["draft.txt"]["message_seq"]) == ("agent", None)
    messages = exported["conversations"][-1]["messages"]
    assert [str(photo.pk)] in [m["attachments"] for m in messages]
    json.dumps(document)  # a JSON document as it is


def test_erasing_a_customer_deletes_its_files_from_storage(
    customer, persistent, alice, history, django_capture_on_commit_callbacks
):
    _first, second = history
    uploads = _attach(persistent, customer, alice, second)
    names = [a.file.name for a in uploads]
    assert all(default_storage.exists(name) for name in names)
    with django_capture_on_commit_callbacks(execute=True):
        privacy.customer_erase(customer_id=customer.pk, actor="test", close_ongoing=True)
    assert not Attachment.objects.exists()
    assert not any(default_storage.exists(name) for name in names)
