"""The pre-chat form in Chromium (docs/protocol.md, "Pre-chat form"): the widget asks the
workstream's questions above the message box, says what is missing beside each before sending,
starts the conversation with the answers, then hides the form; the agent sees the answers in the
customer panel. Live and persistent widgets, English and Danish."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation
from tests.browser.test_inbox import row, signed_in
from tests.browser.test_widget import DOCS_SCREENSHOTS, customer_token, open_demo, sent
from workstreams.models import PrechatField, PrechatFieldType

pytestmark = pytest.mark.browser

TEXT = {
    "en": {
        "message": "Your message",
        "name": "Your name",
        "email": "Your email",
        "topic": "Topic (optional)",
        "required": "Please answer this question.",
        "invalid": "Enter a valid email address.",
    },
    "da": {
        "message": "Din besked",
        "name": "Dit navn",
        "email": "Din e-mail",
        "topic": "Emne (valgfrit)",
        "required": "Besvar venligst dette spørgsmål.",
        "invalid": "Angiv en gyldig e-mailadresse.",
    },
}


def ask(widget) -> None:
    for position, (name, label, label_da, kind, required, choices) in enumerate(
        [
            ("name", "Your name", "Dit navn", PrechatFieldType.TEXT, True, ""),
            ("email", "Your email", "Din e-mail", PrechatFieldType.EMAIL, True, ""),
            ("topic", "Topic", "Emne", PrechatFieldType.CHOICE, False, "Orders\nReturns\nOther"),
        ]
    ):
        PrechatField.objects.create(
            workstream=widget.workstream,
            name=name,
            label=label,
            label_da=label_da,
            type=kind,
            required=required,
            choices=choices,
            position=position,
        )


@pytest.mark.parametrize(("mode", "language"), [("live", "en"), ("live", "da"), ("persistent", "en")])
def test_the_widget_asks_before_the_first_message_and_the_agent_sees_the_answers(
    live_url, new_page, live, persistent, alice, mode, language, tmp_path
):
    widget = live if mode == "live" else persistent
    ask(widget)
    widget.language = language
    widget.save()
    words = TEXT[language]
    page = new_page(locale="da-DK" if language == "da" else "en-GB")
    token = customer_token(persistent, sub="carol") if mode == "persistent" else None
    panel = open_demo(page, live_url, widget.widget_key, token)
    form = panel.locator("#prechat")
    expect(form).to_be_visible()

    box = panel.get_by_label(words["message"])
    box.fill("I want to return a jacket.")
    box.press("Enter")
    expect(form.get_by_text(words["required"])).to_have_count(2)  # name and email, nothing sent
    expect(panel.get_by_label(words["name"])).to_be_focused()
    assert not Conversation.objects.exists()
    if (mode, language) == ("live", "en"):  # for the README
        folder = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "widget-prechat.png"))

    panel.get_by_label(words["name"]).fill("Vera")
    panel.get_by_label(words["email"]).fill("not-an-address")
    box.press("Enter")
    expect(form.get_by_text(words["invalid"])).to_be_visible()
    panel.get_by_label(words["email"]).fill("vera@example.com")
    panel.get_by_label(words["topic"]).select_option("Returns")
    box.press("Enter")
    sent(panel, "I want to return a jacket.")
    expect(form).to_be_hidden()
    conversation = Conversation.objects.get()
    assert conversation.prechat == {"name": "Vera", "email": "vera@example.com", "topic": "Returns"}

    agent = signed_in(new_page, live_url, alice.user)
    row(agent, conversation.pk, "active").click()
    facts = agent.locator(".customer-panel dl.prechat")
    expect(facts).to_contain_text("Your email")
    expect(facts).to_contain_text("vera@example.com")
    expect(facts).to_contain_text("Returns")
