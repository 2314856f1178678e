"""Beyond the tab, in Chromium (docs/email.md): a customer who left gets the agent's answer by
email through a real SMTP server and answers by email; the answer shows in the inbox live and in
the widget when the customer comes back. The widget's offline form and transcript button."""

from __future__ import annotations

import json
import os
import re
import tempfile
import urllib.request
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import jwt
import pytest
from playwright.sync_api import expect

from conversations import services
from conversations.models import Channel, Conversation, Customer, Message
from conversations.tasks import emails_task
from tests.browser.test_inbox import signed_in
from tests.browser.test_widget import current_conversation, off_thread, open_demo, sent, wait_until, write
from tests.factories import OperatingHoursFactory, OperatingIntervalFactory
from tests.keys import rsa_key
from tests.smtp import smtp_server, text_of  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

SECRET = "inbound-secret-for-tests"
# Screenshots of what the tests see, to look at (EMAIL_SCREENSHOTS=<dir>); else a temporary one.
SHOTS = Path(os.environ.get("EMAIL_SCREENSHOTS") or tempfile.mkdtemp(prefix="email-shots-"))


@pytest.fixture(autouse=True)
def _email_settings(settings):
    settings.INBOUND_EMAIL_DOMAIN = "in.example.com"
    settings.INBOUND_EMAIL_SECRET = SECRET
    settings.DEFAULT_FROM_EMAIL = "Support <support@example.com>"


def token_with_email(widget, sub="carol", name="Carol", email="carol@example.com") -> str:
    now = datetime.now(UTC)
    claims = {"sub": sub, "name": name, "email": email, "iss": widget.authentication_setting.issuer}
    return jwt.encode({**claims, "iat": now, "exp": now + timedelta(minutes=30)}, rsa_key(), algorithm="RS256")


def mail_arrives(page, smtp_server, address: str, timeout: float = 15.0):
    """Runs the email sweep (beat's emails_task) until a mail to ``address`` arrived."""
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not smtp_server.to(address):
        assert datetime.now(UTC) < deadline, "no email in time"
        off_thread(emails_task)
        page.wait_for_timeout(250)
    return smtp_server.to(address)[-1]


def post_inbound(live_url: str, raw: bytes) -> dict:
    request = urllib.request.Request(
        f"{live_url}/api/v1/inbound-email/",
        data=raw,
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "message/rfc822"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return json.loads(response.read())


def test_the_customer_who_left_gets_the_answer_by_email_replies_by_email_and_sees_it_all_on_return(
    live_url, new_page, persistent, alice, smtp_server
):
    workstream = persistent.workstream
    workstream.email_unread_after = timedelta(seconds=2)
    workstream.save()
    token = token_with_email(persistent)
    agent = signed_in(new_page, live_url, alice.user)

    # The customer writes, then closes the page.
    customer_page = new_page()
    panel = open_demo(customer_page, live_url, "persistent", token)
    write(panel, "Where is my parcel?")
    sent(panel, "Where is my parcel?")
    conversation = current_conversation(persistent)
    customer_page.close()
    wait_until(agent, lambda: Customer.objects.get(pk=conversation.customer_id).connection_count == 0)

    # Alice answers from the inbox.
    agent.goto(f"{live_url}/agent/conversations/{conversation.pk}/")
    composer = agent.get_by_label("Your reply")
    composer.fill("It left the warehouse today.")
    composer.press("Enter")
    expect(agent.locator("#messages li.msg-agent .msg-status")).to_have_text("Sent")

    # Within the workstream's delay the sweep emails it; not before.
    off_thread(emails_task)
    assert smtp_server.to("carol@example.com") == []
    mail = mail_arrives(agent, smtp_server, "carol@example.com")
    assert "It left the warehouse today." in text_of(mail)
    reply_to = str(mail["Reply-To"].addresses[0].addr_spec)
    assert re.fullmatch(r"reply\+[^@]+@in\.example\.com", reply_to)

    # The customer replies by email, quoting the mail; the reply shows in the inbox live.
    reply = EmailMessage()
    reply["From"] = "Carol <carol@example.com>"
    reply["To"] = reply_to
    reply["Subject"] = "Re: " + mail["Subject"]
    reply["Message-ID"] = "<reply-1@mail.example.com>"
    reply["In-Reply-To"] = mail["Message-ID"]
    reply.set_content("Great, thank you!\n\nOn Fri, Support wrote:\n> It left the warehouse today.\n")
    assert post_inbound(live_url, reply.as_bytes())["status"] == "accepted"
    emailed = agent.locator("#messages li.msg-customer", has_text="Great, thank you!")
    expect(emailed.locator(".msg-channel")).to_have_text("by email")
    agent.get_by_text("Email transcript").click()
    agent.screenshot(path=SHOTS / "inbox-email-reply-and-transcript-form.png")
    stored = Message.objects.get(conversation=conversation, body="Great, thank you!")
    assert stored.channel == Channel.EMAIL

    # The customer comes back: the answer and their emailed reply are in the widget.
    back = new_page()
    panel = open_demo(back, live_url, "persistent", token)
    expect(panel.locator("li.msg-agent", has_text="It left the warehouse today.")).to_be_visible()
    expect(panel.locator("li.msg-customer", has_text="Great, thank you!")).to_be_visible()
    expect(panel.locator("li.msg-customer", has_text="> It left")).to_have_count(0)
    back.screenshot(path=SHOTS / "widget-after-email-reply.png")


@pytest.fixture
def closed_today(live):
    hours = OperatingHoursFactory(name="Office", time_zone="Europe/Copenhagen")
    for weekday in range(7):
        OperatingIntervalFactory(hours=hours, weekday=weekday, opens_at="09:00", closes_at="17:00")
    hours.closed_dates.create(date=datetime.now(ZoneInfo("Europe/Copenhagen")).date(), label="Closed today")
    live.operating_hours = hours
    live.save()
    return live


def test_outside_operating_hours_the_live_widget_takes_an_offline_message_answered_by_email(
    live_url, new_page, closed_today, alice, smtp_server
):
    page = new_page()
    panel = open_demo(page, live_url, "live")
    expect(panel.get_by_text(re.compile("We open again"))).to_be_visible()
    send = panel.get_by_role("button", name="Send message")
    send.click()
    expect(panel.get_by_text("Enter your email address, so we can answer.")).to_be_visible()
    expect(panel.get_by_text("Write your message.")).to_be_visible()
    page.screenshot(path=SHOTS / "offline-form-errors.png")
    panel.get_by_label("Name", exact=True).fill("Dora")
    panel.get_by_label("Email", exact=True).fill("dora@example.com")
    panel.get_by_label("Message", exact=True).fill("Do you ship to Greenland?")
    send.click()
    expect(panel.get_by_text("Thank you! We will answer by email at dora@example.com.")).to_be_visible()
    expect(panel.locator("li.msg-customer", has_text="Greenland")).to_be_visible()
    page.screenshot(path=SHOTS / "offline-form-sent.png")

    conversation = current_conversation(closed_today)
    assert conversation.started_offline and conversation.customer.email == "dora@example.com"
    # An agent answers (Alice, available in the queue, was given it) and it goes by email.
    wait_until(page, lambda: Conversation.objects.get(pk=conversation.pk).agent_id == alice.pk)
    page.close()
    other = new_page()
    wait_until(other, lambda: Customer.objects.get(pk=conversation.customer_id).connection_count == 0)
    off_thread(services.agent_message_send, conversation_id=conversation.pk, agent=alice, body="Yes, we do.")
    mail = mail_arrives(other, smtp_server, "dora@example.com")
    assert "Yes, we do." in text_of(mail)


def test_the_customer_emails_themselves_the_conversation_from_the_widget(
    live_url, new_page, persistent, alice, smtp_server
):
    page = new_page()
    panel = open_demo(page, live_url, "persistent", token_with_email(persistent))
    button = panel.get_by_role("button", name="Email me this conversation")
    expect(button).to_be_hidden()  # nothing to send yet
    write(panel, "Please send me this chat")
    sent(panel, "Please send me this chat")
    button.click()
    expect(panel.get_by_text("We are emailing you this conversation.")).to_be_visible()
    page.screenshot(path=SHOTS / "widget-transcript-sent.png")
    wait_until(page, lambda: smtp_server.to("carol@example.com"))
    assert "Please send me this chat" in text_of(smtp_server.to("carol@example.com")[0])
    assert Conversation.objects.count() == 1
