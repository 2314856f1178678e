"""The agent inbox and the supervisor view in Chromium, against the live server: whole stories
with a customer (the widget on its demo page) and an agent (the inbox) in two browser contexts."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from agents.models import Presence
from conversations import services
from conversations.models import Conversation, Label, Status
from tests.browser.test_widget import (
    DOCS_SCREENSHOTS,
    current_conversation,
    customer_token,
    off_thread,
    open_demo,
    sent,
    wait_until,
    write,
)
from tests.factories import CustomerFactory, UserFactory
from workstreams.models import QuickReply

pytestmark = pytest.mark.browser


def signed_in(new_page, live_url: str, user, path: str = "/agent/", **size):
    """A page of its own browser context, signed in as ``user`` (a session cookie, as after
    the login page), showing ``path``; every confirm() is accepted."""
    client = Client()
    client.force_login(user)
    page = new_page(**size)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_url,
            }
        ]
    )
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(live_url + path)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    return page


def row(page, conversation_id: int, group: str):
    return page.locator(f".group-{group} a.row[data-conversation-id='{conversation_id}']")


def test_persistent_chat_from_first_message_to_a_new_conversation_with_agent_and_customer_in_browsers(
    live_url, new_page, persistent, alice
):
    agent = signed_in(new_page, live_url, alice.user)
    customer = new_page()
    panel = open_demo(customer, live_url, "persistent", customer_token(persistent, sub="carol", name="Carol"))

    # The customer's first message reaches the inbox live, assigned to Alice, unread.
    write(panel, "Hello, my parcel has not arrived.")
    sent(panel, "Hello, my parcel has not arrived.")
    conversation = current_conversation(persistent)
    active = row(agent, conversation.pk, "active")
    expect(active).to_contain_text("Carol")
    expect(active).to_contain_text("has not arrived")
    expect(active.locator(".badge")).to_have_text("1 unread")

    # Alice opens it and answers from the composer; the customer sees the answer.
    active.click()
    expect(agent.locator("#conversation-view h1")).to_have_text("Carol")
    expect(agent.locator("#messages li.msg-customer")).to_contain_text("has not arrived")
    expect(row(agent, conversation.pk, "active").locator(".badge")).to_have_count(0)
    composer = agent.get_by_label("Your reply")
    composer.fill("Sorry to hear that! Let me check.")
    composer.press("Enter")
    expect(agent.locator("#messages li.msg-agent .msg-status")).to_have_text("Sent")
    expect(panel.locator("li.msg-agent", has_text="Let me check")).to_be_visible()

    # The customer reloads: the whole history is still there.
    customer.reload()
    panel = customer.frame_locator("[data-omnichannel-widget] iframe")
    expect(panel.locator("li.msg-agent", has_text="Let me check")).to_be_visible()

    # ✖ Wait: the conversation parks in "Waiting" and frees Alice's capacity.
    agent.get_by_role("button", name="✖ Wait").click()
    expect(row(agent, conversation.pk, "waiting")).to_be_visible()
    expect(agent.locator("#capacity-text")).to_contain_text("0/100")
    expect(panel.locator("li.msg-system[data-kind=moved_to_waiting]")).to_be_visible()

    # The customer comes back: a notice in Alice's page, the row under "Customer returned".
    write(panel, "I found the tracking number: 10482")
    notice = agent.locator(".notice-returned")
    expect(notice).to_contain_text(f"Carol is back in conversation #{conversation.pk}")
    expect(row(agent, conversation.pk, "returned")).to_be_visible()
    expect(agent.locator("#messages li.msg-customer", has_text="10482")).to_be_visible()
    notice.get_by_role("button", name="Dismiss").click()

    # Alice ends it (confirming), writes wrap-up notes and closes it.
    agent.get_by_role("button", name="End", exact=True).click()
    expect(agent.locator("#conversation-head .status-main")).to_have_text("Wrap-up")
    expect(panel.locator("li.msg-system[data-kind=ended_by_agent]")).to_be_visible()
    agent.get_by_label("Wrap-up notes").fill("Parcel re-sent")
    agent.get_by_role("button", name="Close", exact=True).click()
    expect(agent.locator(".empty-pane")).to_be_visible()
    expect(agent.locator(f"a.row[data-conversation-id='{conversation.pk}']")).to_have_count(0)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.wrap_up_notes) == (Status.CLOSED, "Parcel re-sent")

    # The customer's next message starts a new conversation, which reaches Alice again.
    write(panel, "One more question")
    wait_until(customer, lambda: current_conversation(persistent).pk != conversation.pk)
    fresh = current_conversation(persistent)
    expect(row(agent, fresh.pk, "active")).to_contain_text("One more question")


def test_live_chat_queue_messages_and_the_customers_end_seen_from_the_inbox(live_url, new_page, live, alice, queue):
    alice.capacity = 50  # one live conversation fills her
    alice.save()
    queue.average_wait_seconds = 240
    queue.save()
    QuickReply.objects.create(workstream=live.workstream, title="Greeting", body="Hi, I am Alice. How can I help?")
    agent = signed_in(new_page, live_url, alice.user)

    first = new_page()
    first_panel = open_demo(first, live_url, "live")
    write(first_panel, "First in line")
    sent(first_panel, "First in line")
    conversation = current_conversation(live)
    expect(row(agent, conversation.pk, "active")).to_be_visible()
    expect(agent.locator("#presence-select")).to_have_value("busy_dnd")  # full

    waiting = []
    for text in ("Second in line", "Third in line"):
        page = new_page()
        panel = open_demo(page, live_url, "live")
        write(panel, text)
        sent(panel, text)
        waiting.append(panel)
    expect(agent.locator("#waiting-count")).to_have_text("2")
    expect(waiting[1].locator("li.msg-system[data-kind=queue_position]")).to_contain_text("2")
    expect(waiting[1].locator("li.msg-system[data-kind=average_wait_time]")).to_contain_text("4")

    # A quick reply fills the composer; Alice sends it.
    row(agent, conversation.pk, "active").click()
    agent.get_by_role("button", name="Greeting").click()
    expect(agent.get_by_label("Your reply")).to_have_value("Hi, I am Alice. How can I help?")
    agent.get_by_label("Your reply").press("Enter")
    expect(first_panel.locator("li.msg-agent", has_text="How can I help?")).to_be_visible()

    # The customer ends the live chat (after confirming): Alice sees it in wrap-up.
    first_panel.get_by_role("button", name="End chat").click()
    first_panel.get_by_role("dialog", name="End this chat?").get_by_role("button", name="End chat").click()
    expect(agent.locator("#conversation-head .status-main")).to_have_text("Wrap-up")
    expect(agent.locator("#messages li.msg-system[data-kind=ended_by_customer]")).to_be_visible()
    expect(row(agent, conversation.pk, "wrap_up")).to_be_visible()

    # Closing frees her: the next customer in line is assigned, the waiting count drops.
    agent.get_by_role("button", name="Close", exact=True).click()
    second = Conversation.objects.filter(workstream=live.workstream).exclude(pk=conversation.pk).order_by("pk").first()
    expect(row(agent, second.pk, "active")).to_be_visible()
    expect(agent.locator("#waiting-count")).to_have_text("1")
    expect(waiting[0].locator("li.msg-system[data-kind=agent_joined]")).to_contain_text("Alice")


def test_the_supervisor_force_closes_a_conversation_and_the_agent_and_customer_see_it(
    live_url, new_page, persistent, alice
):
    supervisor = signed_in(new_page, live_url, UserFactory(username="sam", is_staff=True), "/agent/supervisor/")
    agent = signed_in(new_page, live_url, alice.user)
    customer = new_page()
    panel = open_demo(customer, live_url, "persistent", customer_token(persistent, sub="dave", name="Dave"))
    write(panel, "Please close my account")
    sent(panel, "Please close my account")
    conversation = current_conversation(persistent)

    board_row = supervisor.locator(f"tr[data-conversation-id='{conversation.pk}']")
    expect(board_row).to_contain_text("Dave")  # arrived live
    expect(board_row).to_contain_text("Alice")
    expect(supervisor.locator(f"tr[data-agent-id='{alice.pk}']")).to_contain_text("50/100")

    board_row.get_by_text("Actions").click()
    board_row.get_by_role("button", name="Force close").click()
    expect(supervisor.locator("#toasts")).to_contain_text("Conversation closed.")
    expect(board_row).to_have_count(0)
    expect(row(agent, conversation.pk, "active")).to_have_count(0)
    expect(panel.locator("li.msg-system[data-kind=ended_by_agent]")).to_be_visible()
    conversation.refresh_from_db()
    assert (conversation.status, conversation.ended_by) == (Status.CLOSED, "supervisor")


def test_an_agent_who_goes_away_gets_no_new_conversation_and_sees_the_queue_grow(live_url, new_page, live, alice):
    agent = signed_in(new_page, live_url, alice.user)
    agent.select_option("#presence-select", "away")
    wait_until(agent, lambda: type(alice).objects.get(pk=alice.pk).presence == Presence.AWAY)
    panel = open_demo(new_page(), live_url, "live")
    write(panel, "Is anyone there?")
    expect(agent.locator("#waiting-count")).to_have_text("1")
    expect(agent.locator(".group-active .none")).to_be_visible()
    agent.select_option("#presence-select", "available")
    expect(agent.locator(".group-active a.row")).to_contain_text("Is anyone there?")
    expect(agent.locator("#waiting-count")).to_have_text("0")


def test_typing_shows_both_ways_between_the_inbox_and_the_widget(live_url, new_page, persistent, alice):
    customer = new_page()
    panel = open_demo(customer, live_url, "persistent", customer_token(persistent, sub="carol", name="Carol"))
    write(panel, "Hello")
    sent(panel, "Hello")
    conversation = current_conversation(persistent)
    agent = signed_in(new_page, live_url, alice.user, f"/agent/conversations/{conversation.pk}/")

    panel.get_by_label("Your message").press_sequentially("Are you th", delay=30)
    expect(agent.get_by_text("Carol is typing…")).to_be_visible()
    agent.get_by_label("Your reply").press_sequentially("Yes, I am", delay=30)
    expect(panel.get_by_text("Alice is typing…")).to_be_visible()
    panel.get_by_label("Your message").press_sequentially("ere?", delay=10)
    panel.get_by_label("Your message").press("Enter")
    expect(agent.locator("#messages li.msg-customer", has_text="Are you there?")).to_be_visible()
    expect(agent.get_by_text("Carol is typing…")).to_be_hidden()


def test_a_failed_agent_message_shows_retry_and_is_resent_with_the_same_client_id(
    live_url, new_page, persistent, alice, monkeypatch, settings
):
    from conversations import services
    from conversations.errors import Unavailable

    customer = new_page()
    panel = open_demo(customer, live_url, "persistent", customer_token(persistent))
    write(panel, "Hello")
    sent(panel, "Hello")
    conversation = current_conversation(persistent)
    real_send = services.agent_message_send
    seen: list[str] = []

    def flaky(**kwargs):
        seen.append(kwargs["client_id"])
        if len(seen) == 1:
            raise Unavailable()
        return real_send(**kwargs)

    monkeypatch.setattr(services, "agent_message_send", flaky)
    settings.FAST_PATH_CONNECTIONS = 0  # every message through the full path, where the failure is
    agent = signed_in(new_page, live_url, alice.user, f"/agent/conversations/{conversation.pk}/")
    agent.get_by_label("Your reply").fill("Try me")
    agent.get_by_label("Your reply").press("Enter")
    failed = agent.locator("#messages li.msg-agent.failed", has_text="Try me")
    expect(failed).to_contain_text("retry later")
    failed.get_by_role("button", name="Retry").click()
    expect(agent.locator("#messages li.msg-agent .msg-status")).to_have_text("Sent")
    expect(agent.locator("#messages li.msg-agent")).to_have_count(1)
    expect(panel.locator("li.msg-agent", has_text="Try me")).to_have_count(1)
    assert len(seen) == 2 and seen[0] == seen[1]


def test_older_messages_load_when_the_agent_scrolls_to_the_top(live_url, new_page, persistent, alice):
    from tests.browser.test_widget import off_thread
    from tests.factories import CustomerFactory

    carol = CustomerFactory(authentication_setting=persistent.authentication_setting, external_id="carol")

    def write_many():
        from conversations import services

        for number in range(1, 81):
            services.customer_message_send(widget=persistent, customer=carol, body=f"Message {number}")

    off_thread(write_many)
    conversation = current_conversation(persistent)
    total = conversation.messages.count()
    agent = signed_in(new_page, live_url, alice.user, f"/agent/conversations/{conversation.pk}/")
    messages = agent.locator("#messages li[data-seq]")
    expect(messages).to_have_count(50)
    agent.locator("#messages").evaluate("(ol) => { ol.scrollTop = 0; }")
    expect(messages).to_have_count(total)
    expect(agent.get_by_role("button", name="Load older messages")).to_have_count(0)
    seqs = messages.evaluate_all("(items) => items.map((i) => Number(i.dataset.seq))")
    assert seqs == list(range(1, total + 1))


def test_a_returning_customer_raises_a_browser_notification_when_the_agent_allowed_it(
    live_url, new_page, persistent, alice
):
    customer = new_page()
    panel = open_demo(customer, live_url, "persistent", customer_token(persistent, sub="carol", name="Carol"))
    write(panel, "Hello")
    sent(panel, "Hello")
    conversation = current_conversation(persistent)
    agent = signed_in(lambda **size: agent_context_page(new_page, live_url), live_url, alice.user)
    agent.get_by_role("link", name="Carol").click()
    agent.get_by_role("button", name="✖ Wait").click()
    expect(row(agent, conversation.pk, "waiting")).to_be_visible()
    write(panel, "I am back")
    agent.wait_for_function("() => window.shown.length > 0")
    assert agent.evaluate("() => window.shown[0]") == [
        "A customer is back",
        f"Carol is back in conversation #{conversation.pk}.",
    ]


def agent_context_page(new_page, live_url):
    page = new_page()
    page.context.grant_permissions(["notifications"], origin=live_url)
    page.context.add_init_script(
        """window.shown = [];
        window.Notification = class { constructor(title, options) { window.shown.push([title, options.body]); } };
        window.Notification.permission = "granted";"""
    )
    return page


def test_an_agent_works_with_the_keyboard_only(live_url, new_page, persistent, alice):
    customer = new_page()
    panel = open_demo(customer, live_url, "persistent", customer_token(persistent, sub="carol", name="Carol"))
    write(panel, "Hello")
    sent(panel, "Hello")
    conversation = current_conversation(persistent)
    agent = signed_in(new_page, live_url, alice.user)
    first_row = row(agent, conversation.pk, "active")
    for _ in range(30):
        agent.keyboard.press("Tab")
        if first_row.evaluate("(a) => a === document.activeElement"):
            break
    expect(first_row).to_be_focused()
    agent.keyboard.press("Enter")
    expect(agent.locator("#conversation-view h1")).to_be_focused()
    composer = agent.get_by_label("Your reply")
    for _ in range(30):
        agent.keyboard.press("Tab")
        if composer.evaluate("(t) => t === document.activeElement"):
            break
    expect(composer).to_be_focused()
    agent.keyboard.type("First line")
    agent.keyboard.press("Shift+Enter")
    agent.keyboard.type("Second line")
    agent.keyboard.press("Enter")
    expect(panel.locator("li.msg-agent", has_text="Second line")).to_contain_text("First line")


# --- Screenshots for the README ------------------------------------------------------------------


SHOTS = [  # name, width, height, language
    ("inbox-desktop.png", 1366, 820, "en"),
    ("inbox-phone.png", 360, 760, "en"),
    ("inbox-da.png", 1366, 820, "da"),
    ("supervisor-desktop.png", 1366, 820, "en"),
    ("supervisor-phone.png", 360, 760, "en"),
]


def test_screenshots_of_the_inbox_and_the_supervisor_view(live_url, new_page, persistent, live, alice, tmp_path):
    folder = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    alice.user.is_staff = True
    alice.user.save()
    QuickReply.objects.create(workstream=persistent.workstream, title="Greeting", body="Hi! How can I help?")
    QuickReply.objects.create(workstream=persistent.workstream, title="Tracking", body="Your tracking link: …")
    people = [
        ("carol", "Carol Jensen", "My parcel has not arrived yet."),
        ("dave", "Dave Hansen", "Can I change my order?"),
    ]
    panels = []
    for sub, name, text in people:
        page = new_page()
        panel = open_demo(page, live_url, "persistent", customer_token(persistent, sub=sub, name=name))
        write(panel, text)
        sent(panel, text)
        panels.append(panel)
    visitor = open_demo(new_page(), live_url, "live")
    write(visitor, "Do you ship to Norway?")
    carol = current_conversation(persistent, customer__external_id="carol")
    # Labels and an internal note on Carol's conversation; a rated conversation for the supervisor.
    for label, colour in (("billing", "#2563eb"), ("delivery", "#16a34a")):
        Label.objects.create(name=label, colour=colour)
    off_thread(services.conversation_labels_set, conversation_id=carol.pk, user=alice.user, labels=["delivery"])
    off_thread(
        services.agent_message_send,
        conversation_id=carol.pk,
        agent=alice,
        body="Carrier says delivered to a neighbour; ask for the address.",
        internal=True,
    )
    persistent.workstream.csat_enabled = True
    persistent.workstream.save()
    erik = CustomerFactory(authentication_setting=persistent.authentication_setting, display_name="Erik Holm")
    rated = off_thread(services.customer_message_send, widget=persistent, customer=erik, body="Hi").conversation
    off_thread(services.conversation_assign, conversation_id=rated.pk, agent=alice)  # Alice is full
    off_thread(services.conversation_end, conversation_id=rated.pk, agent=alice)
    off_thread(services.conversation_close, conversation_id=rated.pk, agent=alice)
    off_thread(
        services.customer_csat_submit,
        widget=persistent,
        customer=erik,
        conversation_id=rated.pk,
        rating=5,
        comment="Quick and friendly",
    )
    for name, width, height, language in SHOTS:
        path = "/agent/supervisor/" if name.startswith("supervisor") else f"/agent/conversations/{carol.pk}/"
        page = signed_in(new_page, live_url, alice.user, path, width=width, height=height)
        if language == "da":
            page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "da", "url": live_url}])
            page.reload()
            expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        if name == "inbox-desktop.png":
            page.get_by_label("Your reply").fill("Sorry to hear that, Carol! Let me look it up.")
            page.get_by_label("Your reply").press("Enter")
            expect(panels[0].locator("li.msg-agent")).to_be_visible()
            write(panels[0], "Thank you! The order number is 10482.")
            expect(page.locator("#messages li.msg-customer", has_text="10482")).to_be_visible()
        page.wait_for_timeout(300)
        page.screenshot(path=str(folder / name), full_page=name.endswith("phone.png"))
        assert (folder / name).stat().st_size > 10_000
