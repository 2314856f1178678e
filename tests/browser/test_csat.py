"""The satisfaction survey in Chromium (docs/protocol.md, "Satisfaction survey (CSAT)"): a live
chat the customer ends and a persistent conversation the agent closes both ask under the
conversation; the customer picks a rating, comments, sends, and the answer is stored once. In
English and in Danish."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from conversations import services
from conversations.models import Conversation
from tests.browser.test_widget import (
    DOCS_SCREENSHOTS,
    agent_writes,
    current_conversation,
    customer_token,
    off_thread,
    open_demo,
    sent,
    write,
)

pytestmark = pytest.mark.browser

TEXT = {
    "en": {
        "message": "Your message",
        "question": "How was your conversation?",
        "good": "Good",
        "comment": "Anything to add? (optional)",
        "send": "Send rating",
        "thanks": "Thank you for your rating!",
        "choose": "Choose a rating from 1 to 5.",
        "end": "End chat",
    },
    "da": {
        "message": "Din besked",
        "question": "Hvordan var din samtale?",
        "good": "God",
        "comment": "Noget at tilføje? (valgfrit)",
        "send": "Send bedømmelse",
        "thanks": "Tak for din bedømmelse!",
        "choose": "Vælg en bedømmelse fra 1 til 5.",
        "end": "Afslut chat",
    },
}


def rate(panel, words, comment: str, screenshot=None) -> None:
    survey = panel.locator("form.csat")
    expect(survey.get_by_text(words["question"])).to_be_visible()
    if screenshot:
        screenshot()
    survey.get_by_role("button", name=words["send"]).click()
    expect(survey.get_by_text(words["choose"])).to_be_visible()  # a rating is needed
    survey.get_by_text(words["good"], exact=True).click()
    survey.get_by_label(words["comment"]).fill(comment)
    survey.get_by_role("button", name=words["send"]).click()
    expect(panel.locator(".csat-done")).to_have_text(words["thanks"])


@pytest.mark.parametrize("language", ["en", "da"])
def test_the_customer_rates_a_persistent_conversation_the_agent_closed(
    live_url, new_page, persistent, alice, language, tmp_path
):
    words = TEXT[language]
    persistent.workstream.csat_enabled = True
    persistent.workstream.save()
    persistent.language = language
    persistent.save()
    page = new_page(locale="da-DK" if language == "da" else "en-GB")
    panel = open_demo(page, live_url, "persistent", customer_token(persistent, sub="carol", name="Carol"))
    write(panel, "Where is my parcel?", label=words["message"])
    sent(panel, "Where is my parcel?")
    expect(panel.locator("li.msg-system[data-kind=agent_joined]")).to_be_visible()
    conversation = current_conversation(persistent)
    agent_writes(conversation.pk, alice, "It arrives tomorrow.")
    off_thread(services.conversation_end, conversation_id=conversation.pk, agent=alice)
    off_thread(services.conversation_close, conversation_id=conversation.pk, agent=alice)
    folder = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shot = (lambda: page.screenshot(path=str(folder / "widget-csat.png"))) if language == "en" else None
    rate(panel, words, "Fast and friendly", screenshot=shot)
    conversation = Conversation.objects.get(pk=conversation.pk)
    assert (conversation.csat_rating, conversation.csat_comment) == (4, "Fast and friendly")


@pytest.mark.parametrize("language", ["en", "da"])
def test_the_visitor_rates_a_live_chat_it_ended(live_url, new_page, live, alice, language):
    words = TEXT[language]
    live.workstream.csat_enabled = True
    live.workstream.save()
    live.language = language
    live.save()
    page = new_page(locale="da-DK" if language == "da" else "en-GB")
    panel = open_demo(page, live_url, "live")
    write(panel, "Do you ship to Norway?", label=words["message"])
    sent(panel, "Do you ship to Norway?")
    expect(panel.locator("li.msg-system[data-kind=agent_joined]")).to_be_visible()
    conversation = current_conversation(live)
    agent_writes(conversation.pk, alice, "Yes, we do.")
    panel.get_by_role("button", name=words["end"]).click()
    panel.get_by_role("dialog").get_by_role("button", name=words["end"]).click()
    rate(panel, words, "")
    conversation = Conversation.objects.get(pk=conversation.pk)
    assert (conversation.csat_rating, conversation.csat_comment) == (4, "")
