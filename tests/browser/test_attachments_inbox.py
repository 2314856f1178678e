"""Attachments in the agent inbox, in Chromium against the live server: the agent attaches files
from the composer (the paperclip's file chooser, a pasted screenshot, files dropped on the pane),
each uploads at once and the message carries them, with or without text, as a note too; images
show as thumbnails, other files as downloads; a customer's attachment arrives live and is in the
server-rendered history after a reload; a refused file says why and nothing is sent. In English
and in Danish."""

from __future__ import annotations

import base64
import os
import struct
import zlib

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from conversations import services
from conversations.models import Message, Sender
from tests.browser.test_inbox import signed_in
from tests.browser.test_widget import DOCS_SCREENSHOTS, off_thread
from tests.factories import CustomerFactory
from tests.files import EXE, PDF, png

pytestmark = pytest.mark.browser


def picture(width: int = 360, height: int = 240) -> bytes:
    """A PNG that looks like something in a screenshot: a sky-to-sand gradient with a brown box."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            inside = width * 0.3 < x < width * 0.7 and height * 0.35 < y < height * 0.85
            if inside:
                rows += bytes((166, 124, 82)) if (x + y) % 40 else bytes((120, 85, 50))
            else:
                t = y / height
                rows += bytes((int(147 + 90 * t), int(197 + 30 * t), int(253 - 110 * t)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )


def a_file(name: str, content: bytes, mime: str) -> dict:
    return {"name": name, "mimeType": mime, "buffer": content}


def customer_writes_first(persistent, name: str = "Carol"):
    """A customer's first message: a conversation assigned to Alice (the one agent available)."""
    customer = CustomerFactory(authentication_setting=persistent.authentication_setting, display_name=name)
    conversation = off_thread(
        services.customer_message_send, widget=persistent, customer=customer, body="Hello"
    ).conversation
    return customer, conversation


def customer_sends_files(persistent, customer, *files: tuple[str, bytes, str], body: str = ""):
    ids = []
    for name, content, mime in files:
        upload = SimpleUploadedFile(name, content, content_type=mime)
        attachment = off_thread(
            services.customer_attachment_upload, widget=persistent, customer=customer, upload=upload
        )
        ids.append(str(attachment.pk))
    return off_thread(services.customer_message_send, widget=persistent, customer=customer, body=body, attachments=ids)


def open_conversation(new_page, live_url, alice, conversation, language: str = "en", **size):
    page = signed_in(new_page, live_url, alice.user, f"/agent/conversations/{conversation.pk}/", **size)
    if language != "en":
        page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_url}])
        page.reload()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    return page


def attach(page, *files: dict, button: str = "Attach files") -> None:
    """Through the paperclip and the file chooser it opens, as a person would."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=button).click()
    chooser.value.set_files(list(files))


def uploaded(page, count: int) -> None:
    expect(page.locator("#composer-files .file-chip")).to_have_count(count)
    expect(page.locator("#composer-files .file-chip.uploading")).to_have_count(0)


def image_loads(page, image) -> None:
    expect(image).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())


def agent_messages(conversation):
    return list(Message.objects.filter(conversation=conversation, sender=Sender.AGENT).order_by("seq"))


def names(message) -> list[str]:
    return [attachment["name"] for attachment in message.attachments or ()]


def test_an_agent_sends_an_image_and_a_pdf_without_text_then_a_pdf_with_text(live_url, new_page, persistent, alice):
    _customer, conversation = customer_writes_first(persistent)
    page = open_conversation(new_page, live_url, alice, conversation)

    attach(page, a_file("parcel.png", picture(), "image/png"), a_file("invoice.pdf", PDF, "application/pdf"))
    uploaded(page, 2)
    expect(page.get_by_role("button", name="Remove invoice.pdf")).to_be_visible()
    page.get_by_label("Your reply").press("Enter")  # no text: the files alone

    sent = page.locator("#messages li.msg-agent", has=page.locator(".msg-files"))
    expect(sent.locator(".msg-status")).to_have_text("Sent")
    expect(sent.locator(".msg-body")).to_have_count(0)
    image_loads(page, sent.get_by_role("img", name="parcel.png"))
    thumbnail = sent.locator("a.file-thumb")
    expect(thumbnail).to_have_attribute("target", "_blank")
    link = sent.locator("a.file-link")
    expect(link.locator(".file-name")).to_have_text("invoice.pdf")
    expect(link).to_have_attribute("download", "invoice.pdf")
    expect(link.locator(".file-size")).to_have_text(f"{len(PDF)}\u00a0bytes")
    expect(page.locator("#composer-files")).to_be_hidden()
    response = page.request.get(live_url + link.get_attribute("href"))
    assert response.ok and response.body() == PDF
    assert response.headers["content-disposition"].startswith("attachment")

    attach(page, a_file("invoice.pdf", PDF, "application/pdf"))
    uploaded(page, 1)
    page.get_by_label("Your reply").fill("Here is the corrected invoice.")
    page.get_by_role("button", name="Send").click()
    second = page.locator("#messages li.msg-agent", has_text="corrected invoice")
    expect(second.locator(".msg-status")).to_have_text("Sent")
    expect(second.locator("a.file-link .file-name")).to_have_text("invoice.pdf")

    first, last = agent_messages(conversation)
    assert (first.body, names(first)) == ("", ["parcel.png", "invoice.pdf"])
    assert (last.body, names(last)) == ("Here is the corrected invoice.", ["invoice.pdf"])


def test_a_customers_attachment_arrives_live_and_is_in_the_history_after_a_reload(
    live_url, new_page, persistent, alice
):
    customer, conversation = customer_writes_first(persistent)
    page = open_conversation(new_page, live_url, alice, conversation)
    report = PDF + b"%" * (2048 - len(PDF))  # 2 KB: "2.0 KB"
    customer_sends_files(
        persistent, customer, ("damage.png", png(40, 30), "image/png"), ("report.pdf", report, "application/pdf")
    )

    arrived = page.locator("#messages li.msg-customer", has=page.locator(".msg-files"))
    image_loads(page, arrived.get_by_role("img", name="damage.png"))
    expect(arrived.locator(".msg-body")).to_have_count(0)
    expect(arrived.locator("a.file-link")).to_have_attribute("download", "report.pdf")
    live_files = arrived.locator(".msg-files").inner_text()
    assert "report.pdf" in live_files and "2.0\u00a0KB" in live_files

    # After a reload the page itself has it (server-rendered), as the live one looked.
    html = page.request.get(f"{live_url}/agent/conversations/{conversation.pk}/").text()
    assert 'alt="damage.png"' in html and 'download="report.pdf"' in html
    page.reload()
    again = page.locator("#messages li.msg-customer", has=page.locator(".msg-files"))
    image_loads(page, again.get_by_role("img", name="damage.png"))
    expect(again.locator(".msg-body")).to_have_count(0)
    assert again.locator(".msg-files").inner_text() == live_files


def test_a_refused_file_says_why_and_nothing_is_sent_nor_the_text_lost(live_url, new_page, persistent, alice):
    _customer, conversation = customer_writes_first(persistent)
    page = open_conversation(new_page, live_url, alice, conversation)
    box = page.get_by_label("Your reply")
    box.fill("Please see the attached report")

    attach(page, a_file("report.pdf", EXE, "application/pdf"))  # an executable, renamed
    error = page.locator("#composer-error")
    expect(error).to_contain_text("report.pdf")
    expect(error).to_contain_text("cannot be sent here")
    expect(page.locator("#composer-files .file-chip")).to_have_count(0)
    expect(box).to_have_value("Please see the attached report")
    page.wait_for_timeout(300)
    expect(page.locator("#messages li.msg-agent")).to_have_count(0)
    assert agent_messages(conversation) == []

    # A file that is fine goes with the text kept, and the error goes away.
    attach(page, a_file("report.pdf", PDF, "application/pdf"))
    uploaded(page, 1)
    expect(error).to_be_hidden()
    box.press("Enter")
    expect(page.locator("#messages li.msg-agent .msg-status")).to_have_text("Sent")
    [message] = agent_messages(conversation)
    assert (message.body, names(message)) == ("Please see the attached report", ["report.pdf"])


def test_a_file_on_an_internal_note_shows_as_a_note_and_stays_one_after_a_reload(live_url, new_page, persistent, alice):
    _customer, conversation = customer_writes_first(persistent)
    page = open_conversation(new_page, live_url, alice, conversation)
    page.get_by_label("Internal note").check()
    attach(page, a_file("refund-approval.pdf", PDF, "application/pdf"))
    uploaded(page, 1)
    page.get_by_role("button", name="Add note").click()  # no text: the file alone

    note = page.locator("#messages li.msg-note", has=page.locator(".file-link"))
    expect(note.locator(".msg-badge")).to_have_text("Internal note")
    expect(note.locator(".msg-status")).to_have_text("Sent")
    expect(note.locator(".file-name")).to_have_text("refund-approval.pdf")
    [message] = agent_messages(conversation)
    assert message.internal and names(message) == ["refund-approval.pdf"]

    page.reload()
    note = page.locator("#messages li.msg-note", has=page.locator(".file-link"))
    expect(note.locator(".msg-badge")).to_have_text("Internal note")
    expect(note.locator(".file-name")).to_have_text("refund-approval.pdf")


FILE_EVENT = """([kind, target, name, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/png" }));
  const options = { bubbles: true, cancelable: true };
  const event = kind === "paste"
    ? new ClipboardEvent("paste", { ...options, clipboardData: transfer })
    : new DragEvent(kind, { ...options, dataTransfer: transfer });
  document.querySelector(target).dispatchEvent(event);
  return event.defaultPrevented;
}"""


def file_event(page, kind: str, target: str, name: str, content: bytes) -> bool:
    return page.evaluate(FILE_EVENT, [kind, target, name, base64.b64encode(content).decode()])


def test_a_pasted_screenshot_and_an_image_dropped_on_the_pane_upload_and_are_sent(
    live_url, new_page, persistent, alice
):
    _customer, conversation = customer_writes_first(persistent)
    page = open_conversation(new_page, live_url, alice, conversation)

    assert file_event(page, "paste", "#composer-input", "image.png", png(30, 20))
    uploaded(page, 1)
    expect(page.get_by_label("Your reply")).to_have_value("")  # the screenshot, not its name as text

    # Dragged over the pane: the hint shows; dropped on the messages: it uploads.
    assert file_event(page, "dragover", "#messages", "photo.png", png(20, 30))
    expect(page.locator("#drop-hint")).to_be_visible()
    expect(page.locator("#drop-hint")).to_have_text("Drop files here to attach them")
    assert file_event(page, "drop", "#messages", "photo.png", png(20, 30))
    expect(page.locator("#drop-hint")).to_be_hidden()
    uploaded(page, 2)

    page.get_by_label("Your reply").fill("Both pictures")
    page.get_by_label("Your reply").press("Enter")
    sent = page.locator("#messages li.msg-agent", has_text="Both pictures")
    expect(sent.locator(".msg-status")).to_have_text("Sent")
    image_loads(page, sent.get_by_role("img", name="image.png"))
    image_loads(page, sent.get_by_role("img", name="photo.png"))
    [message] = agent_messages(conversation)
    assert names(message) == ["image.png", "photo.png"]


def test_in_danish_the_agent_attaches_removes_and_sends_with_danish_labels_and_sizes(
    live_url, new_page, persistent, alice
):
    _customer, conversation = customer_writes_first(persistent)
    page = open_conversation(new_page, live_url, alice, conversation, language="da")
    expect(page.locator("html")).to_have_attribute("lang", "da")
    big = PDF + b"%" * (1536 - len(PDF))  # 1.5 KB: "1,5 KB", with a Danish decimal comma

    attach(
        page,
        a_file("faktura.pdf", big, "application/pdf"),
        a_file("kvittering.png", png(), "image/png"),
        button="Vedhæft filer",
    )
    uploaded(page, 2)
    chips = page.get_by_role("list", name="Filer, der skal sendes")
    expect(chips.locator(".file-chip")).to_have_count(2)
    page.get_by_role("button", name="Fjern kvittering.png").click()
    uploaded(page, 1)
    page.get_by_label("Dit svar").fill("Her er fakturaen.")
    page.get_by_role("button", name="Send").click()

    sent = page.locator("#messages li.msg-agent", has_text="Her er fakturaen.")
    expect(sent.locator(".msg-status")).to_have_text("Sendt")
    expect(sent.get_by_role("list", name="Vedhæftede filer")).to_be_visible()
    expect(sent.locator(".file-size")).to_have_text("1,5\u00a0KB")
    [message] = agent_messages(conversation)
    assert names(message) == ["faktura.pdf"]
    # The server-rendered page says it alike.
    page.reload()
    expect(page.locator("#messages li.msg-agent .file-size")).to_have_text("1,5\u00a0KB")


def test_screenshot_of_a_conversation_with_an_image_and_a_file(live_url, new_page, persistent, alice, tmp_path):
    folder = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    carol = CustomerFactory(authentication_setting=persistent.authentication_setting, display_name="Carol Jensen")
    conversation = customer_sends_files(
        persistent, carol, ("damaged-parcel.png", picture(320, 180), "image/png"), body="My parcel arrived like this:"
    ).conversation
    page = open_conversation(new_page, live_url, alice, conversation, width=1366, height=820)
    attach(page, a_file("return-label.pdf", PDF + b"%" * 48_000, "application/pdf"))
    uploaded(page, 1)
    page.get_by_label("Your reply").fill("Sorry, Carol! Here is a return label; a new parcel is on its way.")
    page.get_by_label("Your reply").press("Enter")
    expect(page.locator("#messages li.msg-agent .msg-status")).to_have_text("Sent")
    attach(
        page,
        a_file("order-10482.pdf", PDF, "application/pdf"),
        a_file("screenshot.png", picture(200, 120), "image/png"),
    )
    uploaded(page, 2)
    image_loads(page, page.locator("#messages img[alt='damaged-parcel.png']"))
    page.wait_for_timeout(300)
    page.screenshot(path=str(folder / "inbox-attachments.png"))
    assert (folder / "inbox-attachments.png").stat().st_size > 10_000
