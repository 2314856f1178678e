"""Attachments in the customer widget, in Chromium (docs/protocol.md, "Attachments"): the customer
attaches files with the paperclip, by pasting a screenshot or by dropping files on the panel;
each uploads at once and waits as a chip; the message carries their ids, with or without text;
images show as thumbnails, other files as download links, on both sides and in the history. A
file the server refuses says why beside the message box and nothing is sent. Live and persistent
widgets, English and Danish."""

from __future__ import annotations

import os
import re
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from conversations import services
from conversations.errors import Unavailable
from conversations.models import Attachment, Conversation, Message
from tests import files
from tests.browser.test_prechat import ask
from tests.browser.test_widget import (  # noqa: F401 - new_page: fails a test on any script error
    DOCS_SCREENSHOTS,
    current_conversation,
    customer_token,
    new_page,
    off_thread,
    open_demo,
    sent,
)

pytestmark = pytest.mark.browser

TEXT = {
    "en": {
        "message": "Your message",
        "attach": "Attach files",
        "send": "Send",
        "remove": "Remove {}",
        "refused": "{} cannot be sent: files of this type are not allowed.",
        "too_large": "{} is too large: a file can be at most 1 KB.",
        "drop": "Drop files here to attach them",
        "name": "Your name",
        "email": "Your email",
        "required": "Please answer this question.",
    },
    "da": {
        "message": "Din besked",
        "attach": "Vedhæft filer",
        "send": "Send",
        "remove": "Fjern {}",
        "refused": "{} kan ikke sendes: filer af denne type er ikke tilladt.",
        "too_large": "{} er for stor: en fil må højst fylde 1 KB.",
        "drop": "Slip filer her for at vedhæfte dem",
        "name": "Dit navn",
        "email": "Din e-mail",
        "required": "Besvar venligst dette spørgsmål.",
    },
}


def picture(width: int = 480, height: int = 320) -> bytes:
    """A PNG that looks like something: a parcel with a crushed corner on a pale table."""

    def pixel(x: int, y: int) -> bytes:
        inside = 110 <= x < width - 110 and 70 <= y < height - 50
        if inside and (width - 110 - x) + (y - 70) < 90:
            return b"\x8a\x5f\x36"  # the crushed corner
        if inside and abs(x - width // 2) < 14:
            return b"\xd9\xc3\x8a"  # tape
        if inside:
            shade = 150 + (x + y) % 7
            return bytes((shade + 40, shade - 10, shade - 70))
        if height - 50 <= y < height - 38 and 116 <= x < width - 104:
            return b"\xc4\xcb\xd6"  # shadow
        level = 233 - y // 16
        return bytes((level, level + 4, min(level + 12, 255)))

    rows = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def a_file(name: str, content: bytes, mime: str) -> dict:
    return {"name": name, "mimeType": mime, "buffer": content}


def open_widget(new_page, live_url, widget, mode: str, language: str = "en", **page_options):
    """The demo page with the panel open, once it knows what it may attach (the paperclip shows)."""
    widget.language = language
    widget.save()
    page = new_page(locale="da-DK" if language == "da" else "en-GB", **page_options)
    token = customer_token(widget, sub="carol") if mode == "persistent" else None
    panel = open_demo(page, live_url, widget.widget_key, token)
    expect(panel.get_by_label(TEXT[language]["message"])).to_be_visible()
    if widget.workstream.attachment_type_list:
        expect(panel.get_by_role("button", name=TEXT[language]["attach"])).to_be_visible()
    return page, panel


def attach_with_the_button(page, panel, words, *chosen: dict) -> None:
    """The customer clicks the paperclip and picks files in the browser's file chooser."""
    with page.expect_file_chooser() as chooser:
        panel.get_by_role("button", name=words["attach"]).click()
    chooser.value.set_files(list(chosen))


def chip(panel, name: str):
    return panel.locator("#attachment-chips li.chip", has_text=name)


def uploaded(panel, name: str):
    """The chip of ``name`` once its file is on the server (it holds the attachment's id)."""
    item = chip(panel, name)
    expect(item).to_have_attribute("data-state", "done")
    assert item.get_attribute("data-attachment-id")
    return item


def thumbnail_loaded(image) -> None:
    expect(image).to_be_visible()
    assert image.evaluate("(img) => img.decode().then(() => img.naturalWidth)") > 0


def send_button(panel, words):
    return panel.locator("#composer").get_by_role("button", name=words["send"], exact=True)


# --- The customer sends files ------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "language"), [("live", "en"), ("persistent", "en"), ("live", "da")])
def test_a_customer_sends_a_screenshot_and_a_pdf_and_sees_the_thumbnail_and_the_link(
    live_url, new_page, live, persistent, alice, mode, language
):
    widget = live if mode == "live" else persistent
    words = TEXT[language]
    page, panel = open_widget(new_page, live_url, widget, mode, language)

    # A screenshot with text.
    attach_with_the_button(page, panel, words, a_file("screenshot.png", files.png(), "image/png"))
    uploaded(panel, "screenshot.png")
    box = panel.get_by_label(words["message"])
    box.fill("The parcel arrived like this.")
    box.press("Enter")
    first = sent(panel, "The parcel arrived like this.")
    thumbnail_loaded(first.get_by_role("img", name="screenshot.png"))
    expect(panel.locator("#attachment-chips li")).to_have_count(0)
    expect(box).to_have_value("")

    # A PDF alone: no text bubble, a download link with its name and size.
    panel.locator("#file-input").set_input_files([a_file("invoice.pdf", files.PDF, "application/pdf")])
    uploaded(panel, "invoice.pdf")
    send_button(panel, words).click()
    second = panel.locator("li.msg-customer", has=panel.locator("a.msg-file"))
    expect(second).to_have_attribute("data-state", "sent")
    link = second.get_by_role("link", name=re.compile("invoice.pdf"))
    expect(link).to_have_text(f"invoice.pdf · {len(files.PDF)} B")
    expect(link).to_have_attribute("download", "invoice.pdf")
    expect(link).to_have_attribute("href", re.compile(r"^/files/[^/]+/$"))
    expect(second.locator(".msg-bubble")).to_have_count(0)

    conversation = current_conversation(widget)
    stored = list(conversation.messages.filter(sender="customer").order_by("seq"))
    assert [(m.body, [a["name"] for a in m.attachments]) for m in stored] == [
        ("The parcel arrived like this.", ["screenshot.png"]),
        ("", ["invoice.pdf"]),
    ]
    assert Attachment.objects.filter(message__isnull=False).count() == 2

    # The history, after a reload, shows them the same way.
    page.reload()
    panel = page.frame_locator("[data-omnichannel-widget] iframe")
    thumbnail_loaded(panel.locator("li.msg-customer").get_by_role("img", name="screenshot.png"))
    expect(panel.locator("li.msg-customer a.msg-file")).to_have_text(f"invoice.pdf · {len(files.PDF)} B")


@pytest.mark.parametrize("mode", ["live", "persistent"])
def test_an_agents_image_and_pdf_appear_in_the_widget_as_they_are_sent(
    live_url, new_page, live, persistent, alice, mode
):
    widget = live if mode == "live" else persistent
    words = TEXT["en"]
    _page, panel = open_widget(new_page, live_url, widget, mode)
    box = panel.get_by_label(words["message"])
    box.fill("Can you send me the return label?")
    box.press("Enter")
    sent(panel, "Can you send me the return label?")
    expect(panel.locator("li.msg-system[data-kind=agent_joined]")).to_be_visible()
    conversation = current_conversation(widget)

    def agent_sends(name: str, content: bytes, mime: str, body: str = "") -> None:
        attachment = off_thread(
            services.agent_attachment_upload,
            conversation_id=conversation.pk,
            agent=alice,
            upload=SimpleUploadedFile(name, content, content_type=mime),
        )
        off_thread(
            services.agent_message_send,
            conversation_id=conversation.pk,
            agent=alice,
            body=body,
            attachments=[str(attachment.pk)],
        )

    agent_sends("return-label.pdf", files.PDF, "application/pdf", body="Here it is.")
    message = panel.locator("li.msg-agent", has_text="Here it is.")
    expect(message.locator("a.msg-file")).to_have_text(f"return-label.pdf · {len(files.PDF)} B")
    agent_sends("where-to-stick-it.png", picture(), "image/png")
    image = panel.locator("li.msg-agent").get_by_role("img", name="where-to-stick-it.png")
    thumbnail_loaded(image)
    # Linked to the full picture, opening in a new tab; shown no larger than a thumbnail.
    link = panel.locator("li.msg-agent a.msg-thumb")
    expect(link).to_have_attribute("target", "_blank")
    assert link.get_attribute("href") == image.get_attribute("src")
    box_size = image.bounding_box()
    assert box_size["width"] <= 221 and box_size["height"] <= 161
    expect(panel.locator("li.msg-agent").last.locator(".msg-bubble")).to_have_count(0)


# --- Refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "language"), [("live", "en"), ("persistent", "da")])
def test_a_refused_file_says_why_keeps_the_text_and_nothing_is_sent(
    live_url, new_page, live, persistent, alice, mode, language
):
    widget = live if mode == "live" else persistent
    words = TEXT[language]
    page, panel = open_widget(new_page, live_url, widget, mode, language)
    box = panel.get_by_label(words["message"])
    box.fill("Here is my invoice")

    # A renamed executable: the browser believes its name; the server reads its bytes.
    attach_with_the_button(page, panel, words, a_file("invoice.pdf", files.EXE, "application/pdf"))
    error = panel.locator("#attach-error")
    expect(error).to_have_text(words["refused"].format("invoice.pdf"))
    expect(error).to_have_attribute("role", "alert")
    expect(panel.locator("#attachment-chips li")).to_have_count(0)
    expect(box).to_have_value("Here is my invoice")
    assert not Attachment.objects.exists()
    assert not Message.objects.filter(sender="customer").exists()
    expect(panel.locator("li.msg-customer")).to_have_count(0)

    # Too large for the workstream: said at once, before any upload.
    widget.workstream.attachment_max_size = 1024
    widget.workstream.save()
    page.reload()
    panel = page.frame_locator("[data-omnichannel-widget] iframe")
    uploads: list[str] = []
    page.on("request", lambda request: "/attachments/" in request.url and uploads.append(request.url))
    expect(panel.get_by_role("button", name=words["attach"])).to_be_visible()  # the limits are known
    panel.locator("#file-input").set_input_files([a_file("notes.txt", b"x" * 2048, "text/plain")])
    expect(panel.locator("#attach-error")).to_have_text(words["too_large"].format("notes.txt"))
    assert uploads == []
    assert not Message.objects.filter(sender="customer").exists()


def test_a_workstream_without_attachments_shows_no_paperclip(live_url, new_page, live):
    live.workstream.attachment_types = ""
    live.workstream.save()
    _page, panel = open_widget(new_page, live_url, live, "live")
    expect(panel.get_by_label("Your message")).to_be_visible()
    expect(panel.get_by_role("button", name="Attach files")).to_have_count(0)


# --- Paste and drop ---------------------------------------------------------------------------------

PASTE = """(_body, [name, bytes]) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
    const box = document.getElementById("message-input");
    box.focus();
    box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
}"""

DRAG = """(_body, [kind, name, bytes, type]) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(bytes)], name, {type}));
    const target = document.getElementById("log");
    target.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


@pytest.mark.parametrize("mode", ["live", "persistent"])
def test_a_pasted_screenshot_and_a_dropped_file_upload_and_go_with_the_message(
    live_url, new_page, live, persistent, alice, mode
):
    widget = live if mode == "live" else persistent
    _page, panel = open_widget(new_page, live_url, widget, mode)
    body = panel.locator("body")

    body.evaluate(PASTE, ["image.png", list(files.png())])
    uploaded(panel, "image.png")

    pdf = list(files.PDF)
    body.evaluate(DRAG, ["dragenter", "receipt.pdf", pdf, "application/pdf"])
    hint = panel.locator("#drop-hint")
    expect(hint).to_be_visible()
    expect(hint).to_have_text("Drop files here to attach them")
    body.evaluate(DRAG, ["drop", "receipt.pdf", pdf, "application/pdf"])
    expect(hint).to_be_hidden()
    uploaded(panel, "receipt.pdf")

    # One of them taken off again with its ×.
    panel.get_by_role("button", name="Remove receipt.pdf").click()
    expect(chip(panel, "receipt.pdf")).to_have_count(0)

    panel.get_by_label("Your message").press("Enter")
    message = panel.locator("li.msg-customer", has=panel.locator("img"))
    expect(message).to_have_attribute("data-state", "sent")
    thumbnail_loaded(message.get_by_role("img", name="image.png"))
    stored = Message.objects.get(sender="customer")
    assert (stored.body, [a["name"] for a in stored.attachments]) == ("", ["image.png"])


# --- The pre-chat form and retries ----------------------------------------------------------------------


def test_the_first_message_with_only_a_file_waits_for_the_prechat_answers(live_url, new_page, live, alice):
    ask(live)
    words = TEXT["en"]
    _page, panel = open_widget(new_page, live_url, live, "live")
    expect(panel.locator("#prechat")).to_be_visible()
    panel.locator("#file-input").set_input_files([a_file("photo.png", files.png(), "image/png")])
    uploaded(panel, "photo.png")
    panel.get_by_label(words["message"]).press("Enter")
    expect(panel.locator("#prechat").get_by_text(words["required"])).to_have_count(2)
    uploaded(panel, "photo.png")  # still waiting with the message box
    assert not Conversation.objects.exists()

    panel.get_by_label(words["name"]).fill("Vera")
    panel.get_by_label(words["email"]).fill("vera@example.com")
    send_button(panel, words).click()
    message = panel.locator("li.msg-customer", has=panel.locator("img"))
    expect(message).to_have_attribute("data-state", "sent")
    thumbnail_loaded(message.get_by_role("img", name="photo.png"))
    expect(panel.locator("#prechat")).to_be_hidden()
    conversation = Conversation.objects.get()
    assert conversation.prechat == {"name": "Vera", "email": "vera@example.com"}
    assert [a["name"] for a in conversation.messages.get(sender="customer").attachments] == ["photo.png"]


def test_a_failed_message_with_a_file_is_retried_with_the_same_attachment(
    live_url, new_page, persistent, alice, monkeypatch
):
    real_send = services.customer_message_send
    seen: list[tuple] = []

    def flaky(**kwargs):
        seen.append((kwargs["client_id"], kwargs.get("attachments")))
        if len(seen) == 1:
            raise Unavailable()
        return real_send(**kwargs)

    monkeypatch.setattr(services, "customer_message_send", flaky)
    _page, panel = open_widget(new_page, live_url, persistent, "persistent")
    panel.locator("#file-input").set_input_files([a_file("invoice.pdf", files.PDF, "application/pdf")])
    attachment_id = uploaded(panel, "invoice.pdf").get_attribute("data-attachment-id")
    box = panel.get_by_label("Your message")
    box.fill("Wrong amount")
    box.press("Enter")
    message = panel.locator("li.msg-customer", has_text="Wrong amount")
    expect(message).to_have_attribute("data-state", "failed")
    message.get_by_role("button", name="Retry").click()
    expect(message).to_have_attribute("data-state", "sent")
    assert len(seen) == 2 and seen[0] == seen[1] == (seen[0][0], [attachment_id])
    stored = Message.objects.get(sender="customer")
    assert [a["id"] for a in stored.attachments] == [attachment_id]
    expect(panel.locator("li.msg-customer")).to_have_count(1)


# --- Screenshot (docs/screenshots/) -----------------------------------------------------------------------


def test_screenshot_of_a_conversation_with_attachments(live_url, new_page, persistent, alice, tmp_path):
    persistent.title = "Chat with us"
    persistent.subtitle = "We usually answer within minutes"
    page, panel = open_widget(new_page, live_url, persistent, "persistent", width=1280, height=800)
    panel.locator("#file-input").set_input_files([a_file("parcel.png", picture(), "image/png")])
    uploaded(panel, "parcel.png")
    box = panel.get_by_label("Your message")
    box.fill("My parcel arrived damaged:")
    box.press("Enter")
    message = sent(panel, "My parcel arrived damaged:")
    thumbnail_loaded(message.get_by_role("img", name="parcel.png"))
    expect(panel.locator("li.msg-system[data-kind=agent_joined]")).to_be_visible()
    conversation = current_conversation(persistent)
    label = off_thread(
        services.agent_attachment_upload,
        conversation_id=conversation.pk,
        agent=alice,
        upload=SimpleUploadedFile("return-label.pdf", files.PDF + b"%" * 48_000, content_type="application/pdf"),
    )
    off_thread(
        services.agent_message_send,
        conversation_id=conversation.pk,
        agent=alice,
        body="Sorry! Here is a return label.",
        attachments=[str(label.pk)],
    )
    expect(panel.locator("li.msg-agent a.msg-file")).to_contain_text("return-label.pdf")
    panel.locator("#file-input").set_input_files([a_file("receipt.pdf", files.PDF + b"%" * 120_000, "application/pdf")])
    uploaded(panel, "receipt.pdf")
    box.fill("Thanks! The receipt, too:")
    page.wait_for_timeout(300)
    folder = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "widget-attachments.png"))
    assert (folder / "widget-attachments.png").stat().st_size > 10_000
