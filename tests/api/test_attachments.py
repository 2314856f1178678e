"""Attachments over REST (docs/protocol.md, "Attachments"): uploads by customers and agents,
checked by what their bytes are against the workstream's limits, sent by id in messages, and
served by signed, short-lived URLs that can never run in the app's origin."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from conversations import services
from conversations.models import Attachment, Message, Status
from omnichannel.uploads import MAX_REQUEST_BODY, BodySizeLimit
from tests import files

pytestmark = pytest.mark.django_db

A = "/api/v1/agent/conversations/"
W = "/api/v1/widget/persistent/conversation/"


def upload(client, path, content: bytes, name: str = "file.bin", content_type: str = "application/octet-stream"):
    return client.post(path, {"file": SimpleUploadedFile(name, content, content_type=content_type)}, format="multipart")


def fetch(url: str):
    """A file by its URL alone: a client with no credential at all."""
    response = APIClient().get(url)
    body = b"".join(response) if response.streaming else response.content  # a sync client reads the async stream
    return response, body


def test_a_customer_uploads_an_image_and_sends_it_without_text(as_customer, customer, conversation, as_agent, alice):
    carol = as_customer(customer.external_id)
    # The client calls it a text file; its bytes say PNG, and that is what counts.
    response = upload(carol, f"{W}attachments/", files.png(), name="screenshot.txt", content_type="text/plain")
    assert response.status_code == 201, response.content
    attachment = response.json()["attachment"]
    assert set(attachment) == {"id", "name", "size", "content_type", "url"}
    assert (attachment["name"], attachment["size"], attachment["content_type"]) == (
        "screenshot.txt",
        len(files.png()),
        "image/png",
    )
    sent = carol.post(f"{W}messages/", {"body": "", "attachments": [attachment["id"]]}, format="json")
    assert sent.status_code == 201, sent.content
    assert sent.json()["body"] == ""
    assert [a["id"] for a in sent.json()["attachments"]] == [attachment["id"]]
    # The agent sees it in the history, with a URL that works without credentials.
    history = as_agent(alice).get(f"{A}{conversation.pk}/messages/").json()["messages"]
    seen = history[-1]["attachments"][0]
    assert seen["content_type"] == "image/png"
    response, body = fetch(seen["url"])
    assert response.status_code == 200 and body == files.png()
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")
    assert "sandbox" in response["Content-Security-Policy"]


def test_every_message_object_carries_attachments_even_when_there_are_none(as_customer, customer, conversation):
    messages = as_customer(customer.external_id).get(f"{W}messages/").json()["messages"]
    assert messages and all(m["attachments"] == [] for m in messages)


def test_an_agent_sends_a_pdf_the_customer_downloads_it_as_an_attachment(
    as_agent, alice, as_customer, customer, conversation
):
    agent = as_agent(alice)
    attachment = upload(agent, f"{A}{conversation.pk}/attachments/", files.PDF, name="invoice.pdf").json()["attachment"]
    assert attachment["content_type"] == "application/pdf"
    sent = agent.post(
        f"{A}{conversation.pk}/messages/", {"body": "Your invoice", "attachments": [attachment["id"]]}, format="json"
    )
    assert sent.status_code == 201
    history = as_customer(customer.external_id).get(f"{W}messages/").json()["messages"]
    assert history[-1]["body"] == "Your invoice"
    [seen] = history[-1]["attachments"]
    assert (seen["name"], seen["size"]) == ("invoice.pdf", len(files.PDF))
    response, body = fetch(seen["url"])
    assert body == files.PDF
    assert response["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_an_agent_attaches_a_file_to_an_internal_note_the_customer_never_sees(
    as_agent, alice, as_customer, customer, conversation
):
    agent = as_agent(alice)
    attachment = upload(agent, f"{A}{conversation.pk}/attachments/", files.TEXT, name="notes.txt").json()["attachment"]
    note = agent.post(
        f"{A}{conversation.pk}/messages/", {"internal": True, "attachments": [attachment["id"]]}, format="json"
    )
    assert note.status_code == 201 and note.json()["internal"] is True
    history = as_customer(customer.external_id).get(f"{W}messages/").json()["messages"]
    assert all(m["attachments"] == [] for m in history)


def test_a_renamed_executable_is_refused_by_what_its_bytes_are(as_customer, customer, conversation):
    response = upload(
        as_customer(customer.external_id), f"{W}attachments/", files.EXE, "invoice.pdf", content_type="application/pdf"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "file_type_not_allowed"
    assert not Attachment.objects.exists()


@pytest.mark.parametrize(("content", "name"), [(files.SVG_WITH_SCRIPT, "logo.svg"), (files.HTML, "page.html")])
def test_svg_and_html_are_not_allowed_by_default(as_customer, customer, conversation, content, name):
    response = upload(as_customer(customer.external_id), f"{W}attachments/", content, name, "image/png")
    assert response.status_code == 415 and response.json()["code"] == "file_type_not_allowed"


@pytest.mark.parametrize(
    ("content", "name", "content_type"),
    [(files.SVG_WITH_SCRIPT, "logo.svg", "image/svg+xml"), (files.HTML, "page.html", "text/html")],
)
def test_allowed_svg_or_html_is_served_as_a_download_that_cannot_run(
    as_customer, customer, conversation, persistent, content, name, content_type
):
    workstream = persistent.workstream
    workstream.attachment_types = "image/*\ntext/html"
    workstream.save()
    attachment = upload(as_customer(customer.external_id), f"{W}attachments/", content, name, "image/png").json()[
        "attachment"
    ]
    assert attachment["content_type"] == content_type
    response, body = fetch(attachment["url"])
    assert body == content
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_a_zero_byte_file_is_a_validation_error(as_customer, customer, conversation):
    response = upload(as_customer(customer.external_id), f"{W}attachments/", b"", "empty.txt")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error" and "file" in response.json()["fields"]


def test_no_file_at_all_is_a_validation_error(as_customer, customer, conversation):
    response = as_customer(customer.external_id).post(f"{W}attachments/", {"other": "x"}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def test_a_file_over_the_workstreams_limit_is_too_large(as_customer, customer, conversation, persistent):
    workstream = persistent.workstream
    workstream.attachment_max_size = 1024
    workstream.save()
    response = upload(as_customer(customer.external_id), f"{W}attachments/", files.TEXT * 40, "big.txt")
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large" and response.json()["max_size"] == 1024
    assert not Attachment.objects.exists()


def test_a_type_the_workstream_does_not_list_is_refused(as_customer, customer, conversation, persistent):
    workstream = persistent.workstream
    workstream.attachment_types = "application/pdf"
    workstream.save()
    response = upload(as_customer(customer.external_id), f"{W}attachments/", files.png(), "a.png", "image/png")
    assert response.status_code == 415 and response.json()["code"] == "file_type_not_allowed"


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(as_customer, customer, conversation):
    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body was read")

        readline = read

    client = as_customer(customer.external_id)
    response = client.generic(
        "POST",
        f"{W}attachments/",
        b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(20 * 1024 * 1024),
        **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"


def test_a_100_mb_upload_is_refused_by_the_server_without_reading_it_all():
    """The ASGI middleware in front of Django (both real-time setups): a declared length over
    the ceiling is refused before any of the body is received, a chunked one as soon as it
    passes the ceiling."""
    chunk = b"\0" * (1024 * 1024)
    total = 100

    async def run(headers):
        pulled = 0
        sent = []

        async def receive():
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": chunk, "more_body": pulled < total}

        async def send(message):
            sent.append(message)

        async def app(scope, receive, send):  # reads the whole body, as Django's handler does
            while True:
                message = await receive()
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    break
            if message["type"] != "http.disconnect":
                await send({"type": "http.response.start", "status": 201, "headers": []})
                await send({"type": "http.response.body", "body": b"{}"})

        scope = {"type": "http", "method": "POST", "path": W + "attachments/", "headers": headers}
        await BodySizeLimit(app)(scope, receive, send)
        return pulled, sent

    pulled, sent = asyncio.run(run([(b"content-length", str(total * len(chunk)).encode())]))
    assert pulled == 0
    assert sent[0]["status"] == 413 and b"file_too_large" in sent[1]["body"]
    pulled, sent = asyncio.run(run([(b"transfer-encoding", b"chunked")]))
    assert pulled == MAX_REQUEST_BODY // len(chunk) + 1 < total
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413


def test_an_attachment_of_another_customer_is_not_found(
    as_customer, customer, other_customer, conversation, persistent
):
    other = services.customer_message_send(widget=persistent, customer=other_customer, body="Hi").conversation
    dave = as_customer(other_customer.external_id)
    theirs = upload(dave, f"{W}attachments/", files.PDF, "dave.pdf").json()["attachment"]
    response = as_customer(customer.external_id).post(
        f"{W}messages/", {"body": "mine now", "attachments": [theirs["id"]]}, format="json"
    )
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert not Message.objects.filter(body="mine now").exists()
    assert Attachment.objects.get(pk=theirs["id"]).message_id is None
    # The owner still sends it.
    sent = dave.post(f"{W}messages/", {"body": "", "attachments": [theirs["id"]]}, format="json")
    assert sent.status_code == 201 and sent.json()["conversation_id"] == other.pk


def test_an_agents_upload_is_not_the_customers_and_one_id_is_sent_once(
    as_agent, alice, as_customer, customer, conversation
):
    agent = as_agent(alice)
    carol = as_customer(customer.external_id)
    agents = upload(agent, f"{A}{conversation.pk}/attachments/", files.PDF, "a.pdf").json()["attachment"]
    refused = carol.post(f"{W}messages/", {"body": "x", "attachments": [agents["id"]]}, format="json")
    assert refused.status_code == 404
    mine = upload(carol, f"{W}attachments/", files.PDF, "b.pdf").json()["attachment"]
    assert carol.post(f"{W}messages/", {"body": "1", "attachments": [mine["id"]]}, format="json").status_code == 201
    again = carol.post(f"{W}messages/", {"body": "2", "attachments": [mine["id"]]}, format="json")
    assert again.status_code == 404 and again.json()["code"] == "not_found"


def test_an_agent_cannot_send_an_upload_of_another_conversation(as_agent, alice, conversation, persistent, visitor):
    other = services.customer_message_send(widget=persistent, customer=visitor, body="Hi").conversation
    other.refresh_from_db()
    if other.status == Status.OPEN:
        services.conversation_assign(conversation_id=other.pk, agent=alice)
    agent = as_agent(alice)
    elsewhere = upload(agent, f"{A}{other.pk}/attachments/", files.PDF, "a.pdf").json()["attachment"]
    response = agent.post(
        f"{A}{conversation.pk}/messages/", {"body": "x", "attachments": [elsewhere["id"]]}, format="json"
    )
    assert response.status_code == 404


def test_an_agent_cannot_upload_into_someone_elses_conversation(as_agent, bob, conversation):
    response = upload(as_agent(bob), f"{A}{conversation.pk}/attachments/", files.PDF, "a.pdf")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("attachments", "code"),
    [
        (["not-a-uuid"], "not_found"),
        (["00000000-0000-4000-8000-000000000000"], "not_found"),
        ("one-id", "validation_error"),
        ([1, 2], "validation_error"),
        ([f"00000000-0000-4000-8000-{i:012d}" for i in range(11)], "validation_error"),
    ],
)
def test_bad_attachment_lists_are_refused_and_nothing_is_written(
    as_customer, customer, conversation, attachments, code
):
    carol = as_customer(customer.external_id)
    response = carol.post(f"{W}messages/", {"body": "x", "attachments": attachments}, format="json")
    assert response.json()["code"] == code
    assert response.status_code == (404 if code == "not_found" else 400)
    assert not Message.objects.filter(body="x").exists()


def test_a_message_without_text_and_without_attachments_is_still_body_empty(as_customer, customer, conversation):
    response = as_customer(customer.external_id).post(f"{W}messages/", {"body": " ", "attachments": []}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "body_empty"


def test_a_tampered_or_expired_url_is_not_found(as_customer, customer, conversation, settings):
    attachment = upload(as_customer(customer.external_id), f"{W}attachments/", files.PDF, "a.pdf").json()["attachment"]
    assert fetch(attachment["url"])[0].status_code == 200
    tampered = attachment["url"].rstrip("/")[:-2] + "xx/"
    assert fetch(tampered)[0].status_code == 404
    settings.ATTACHMENT_URL_MAX_AGE = -1
    response = fetch(attachment["url"])[0]
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_uploads_never_sent_are_removed_after_a_day_with_their_files(
    as_customer, customer, conversation, django_capture_on_commit_callbacks
):
    carol = as_customer(customer.external_id)
    old, recent, sent = (upload(carol, f"{W}attachments/", files.PDF, f"{n}.pdf").json()["attachment"] for n in "abc")
    carol.post(f"{W}messages/", {"body": "", "attachments": [sent["id"]]}, format="json")
    Attachment.objects.filter(pk__in=[old["id"], sent["id"]]).update(created_at=timezone.now() - timedelta(days=2))
    names = {a.pk.hex: a.file.name for a in Attachment.objects.all()}
    assert all(default_storage.exists(name) for name in names.values())
    with django_capture_on_commit_callbacks(execute=True):  # the files go once the rows are gone
        assert services.attachments_sweep() == 1
    assert {str(pk) for pk in Attachment.objects.values_list("pk", flat=True)} == {recent["id"], sent["id"]}
    assert not default_storage.exists(names[old["id"].replace("-", "")])
    assert default_storage.exists(names[sent["id"].replace("-", "")])
