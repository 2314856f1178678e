"""The customer widget in Chromium: the embed loader on the demo host page, the chat panel in
its iframe, and whole stories against the live server. The agent side is played through the
engine's services (the inbox is another page's job)."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from django.db import connections
from playwright.sync_api import expect

from conversations import events, services
from conversations.models import Conversation, Customer, Message
from tests.factories import CustomerFactory, OperatingHoursFactory, OperatingIntervalFactory
from tests.keys import rsa_key

pytestmark = pytest.mark.browser

# `UPDATE_SCREENSHOTS=1 pytest tests/browser/test_widget.py -k screenshots` refreshes
# docs/screenshots/widget-*.png; otherwise the screenshots go to a temporary directory.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def new_page(new_page):
    """The harness's pages, failing the test on any uncaught script error in the page or panel."""
    errors: list[str] = []

    def make(*args, **kwargs):
        page = new_page(*args, **kwargs)
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    assert errors == [], f"script errors: {errors}"


def off_thread(function, *args, **kwargs):
    """Run engine calls on another thread: Playwright's event loop lives on the test thread, and
    the engine's broadcasts (async_to_sync) refuse to run beside a running loop."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def customer_token(widget, sub: str = "carol", name: str = "Carol", minutes: float = 30) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": sub,
        "name": name,
        "iss": widget.authentication_setting.issuer,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, rsa_key(), algorithm="RS256")


def open_demo(page, live_url: str, widget_key: str, token: str | None = None):
    """The demo host page with the launcher opened; returns the panel's frame."""
    page.goto(f"{live_url}/widget/{widget_key}/demo/" + (f"#token={token}" if token else ""))
    launcher = page.locator("[data-omnichannel-widget] button.launcher")
    expect(launcher).to_be_visible()
    if launcher.get_attribute("aria-expanded") != "true":
        launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    return page.frame_locator("[data-omnichannel-widget] iframe")


def write(panel, text: str, label: str = "Your message") -> None:
    box = panel.get_by_label(label)
    box.fill(text)
    box.press("Enter")


def sent(panel, text: str):
    message = panel.locator("li.msg-customer", has_text=text)
    expect(message).to_have_attribute("data-state", "sent")
    return message


def current_conversation(widget, **filters) -> Conversation:
    return Conversation.objects.filter(workstream=widget.workstream, **filters).order_by("-pk").first()


def agent_writes(conversation_id: int, agent, body: str) -> Message:
    return off_thread(services.agent_message_send, conversation_id=conversation_id, agent=agent, body=body).message


def wait_until(page, predicate, timeout: float = 10.0) -> None:
    """Poll the database (the server works in other threads) while the browser keeps going."""
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not predicate():
        assert datetime.now(UTC) < deadline, "condition not met in time"
        page.wait_for_timeout(100)


# --- Persistent chat ---------------------------------------------------------------------------------


def test_persistent_chat_history_survives_a_reload_waiting_and_the_agents_end_starts_a_new_conversation(
    live_url, new_page, persistent, alice
):
    page = new_page()
    panel = open_demo(page, live_url, "persistent", customer_token(persistent))
    expect(panel.get_by_role("heading", name=persistent.title)).to_be_visible()
    expect(panel.get_by_text("You can close this window and come back any time")).to_be_visible()
    expect(panel.get_by_role("button", name="End chat")).to_have_count(0)

    write(panel, "Hello, my parcel has not arrived.")
    sent(panel, "Hello, my parcel has not arrived.")
    expect(panel.locator("li.msg-system[data-kind=agent_joined]")).to_contain_text("Alice")
    conversation = current_conversation(persistent)
    assert conversation.agent_id == alice.pk

    agent_writes(conversation.pk, alice, "Sorry to hear that! Let me check.")
    expect(panel.locator("li.msg-agent", has_text="Sorry to hear that!")).to_be_visible()
    expect(panel.locator("li.msg-agent .msg-author").first).to_have_text("Alice")

    # A reload keeps the whole conversation; the panel opens again by itself.
    page.reload()
    panel = page.frame_locator("[data-omnichannel-widget] iframe")
    expect(panel.locator("li.msg")).to_have_count(3)
    expect(panel.locator("li.msg").nth(0)).to_contain_text("Hello, my parcel")
    expect(panel.locator("li.msg").nth(2)).to_contain_text("Sorry to hear that!")

    # ✖: the agent moves it to waiting; the customer comes back and writes.
    off_thread(services.conversation_wait, conversation_id=conversation.pk, agent=alice)
    expect(panel.locator("li.msg-system[data-kind=moved_to_waiting]")).to_be_visible()
    write(panel, "It arrived today, thanks.")
    sent(panel, "It arrived today, thanks.")
    wait_until(page, lambda: Conversation.objects.get(pk=conversation.pk).status == "active")

    # The agent ends it: the customer sees it ended, and the next message starts a new one.
    off_thread(services.conversation_end, conversation_id=conversation.pk, agent=alice)
    expect(panel.locator("li.msg-system[data-kind=ended_by_agent]")).to_be_visible()
    expect(panel.get_by_text("This conversation has ended.")).to_be_visible()
    write(panel, "One more question about returns.")
    sent(panel, "One more question about returns.")
    divider = panel.get_by_role("separator")
    expect(divider).to_have_text(re.compile("new conversation", re.I))
    expect(panel.locator("ol.conversation")).to_have_count(2)
    expect(panel.locator("ol.conversation").first).to_contain_text("It arrived today")
    expect(panel.locator("ol.conversation").last).to_contain_text("One more question about returns.")
    expect(panel.get_by_text("This conversation has ended.")).to_be_hidden()
    conversations = list(Conversation.objects.filter(workstream=persistent.workstream).order_by("pk"))
    assert [c.status for c in conversations] == ["wrap_up", "active"]
    assert conversations[1].messages.filter(sender="customer").count() == 1


def test_a_customer_types_and_the_agent_sees_it_and_the_agent_typing_shows_in_the_panel(
    live_url, new_page, persistent, alice
):
    from tests.factories import api_key

    carol = CustomerFactory(authentication_setting=persistent.authentication_setting, external_id="carol")
    off_thread(services.customer_message_send, widget=persistent, customer=carol, body="Hello", client_id="c-1")
    conversation = current_conversation(persistent)
    assert conversation.agent_id == alice.pk
    page = new_page()
    panel = open_demo(page, live_url, "persistent", customer_token(persistent))
    expect(panel.locator("li.msg-customer", has_text="Hello")).to_be_visible()
    # The agent's side: a socket of the agent protocol, opened by a second page of this server.
    agent_page = new_page()
    agent_page.goto(live_url + "/healthz")
    key = api_key(alice.user)
    agent_page.evaluate(
        """([url, key]) => new Promise((resolve) => {
            window.frames_ = [];
            window.agentSocket = new WebSocket(url);
            window.agentSocket.onopen = () => window.agentSocket.send(JSON.stringify({type: "auth", token: key}));
            window.agentSocket.onmessage = (event) => {
                const frame = JSON.parse(event.data);
                window.frames_.push(frame);
                if (frame.type === "ready") resolve();
            };
        })""",
        [live_url.replace("http", "ws") + "/ws/agent/", key],
    )
    panel.get_by_label("Your message").press_sequentially("Are you th", delay=30)
    agent_page.wait_for_function(
        "(id) => window.frames_.some((f) => f.type === 'typing' && f.sender === 'customer'"
        " && f.conversation_id === id)",
        arg=conversation.pk,
    )
    agent_page.evaluate(
        "(id) => window.agentSocket.send(JSON.stringify({type: 'typing', conversation_id: id}))", conversation.pk
    )
    expect(panel.get_by_text("Alice is typing…")).to_be_visible()
    agent_writes(conversation.pk, alice, "Yes, I am here.")
    expect(panel.get_by_text("Alice is typing…")).to_be_hidden()


def test_older_messages_load_when_the_customer_scrolls_to_the_top(live_url, new_page, persistent):
    carol = CustomerFactory(authentication_setting=persistent.authentication_setting, external_id="carol")

    def write_many():
        for number in range(1, 81):
            services.customer_message_send(widget=persistent, customer=carol, body=f"Message {number}")

    off_thread(write_many)
    total = Message.objects.filter(conversation__customer=carol).count()
    assert total == 81  # and the "no agent now" automated message
    page = new_page()
    panel = open_demo(page, live_url, "persistent", customer_token(persistent))
    expect(panel.locator("li.msg")).to_have_count(50)
    expect(panel.locator("li.msg").last).to_contain_text("Message 80")
    log = panel.locator("#log")
    expect(panel.locator("li.msg").last).to_be_in_viewport()
    assert log.evaluate("(log) => log.scrollTop") > 0  # opened at the newest message
    log.evaluate("(log) => { log.scrollTop = 0; }")
    expect(panel.locator("li.msg")).to_have_count(total)
    expect(panel.locator("li.msg").first).to_contain_text("Message 1")
    expect(panel.get_by_role("button", name="Load earlier messages")).to_be_hidden()
    seqs = panel.locator("li.msg").evaluate_all("(items) => items.map((i) => Number(i.dataset.seq))")
    assert seqs == list(range(1, total + 1))


# --- Live chat -----------------------------------------------------------------------------------------


def test_live_chat_tells_the_queue_position_and_wait_and_the_customer_ends_it_after_confirming(
    live_url, new_page, live, queue
):
    queue.average_wait_seconds = 4 * 60
    queue.save()
    for _ in range(2):  # two customers wait already; no agent is available
        visitor = CustomerFactory(authentication_setting=None, widget=live, display_name="")
        off_thread(services.customer_message_send, widget=live, customer=visitor, body="Hi", client_id=None)
    page = new_page()
    panel = open_demo(page, live_url, "live")
    expect(panel.get_by_text("You can close this window")).to_have_count(0)
    write(panel, "Is anyone there?")
    sent(panel, "Is anyone there?")
    expect(panel.locator("li.msg-system[data-kind=queue_position]")).to_have_text(
        re.compile("You are number 3 in the queue")
    )
    expect(panel.locator("li.msg-system[data-kind=average_wait_time]")).to_contain_text("about 4 minutes")

    end = panel.get_by_role("button", name="End chat")
    end.click()
    dialog = panel.get_by_role("dialog", name="End this chat?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(end).to_be_focused()
    assert current_conversation(live, customer__widget=live, status="open") is not None

    end.click()
    dialog.get_by_role("button", name="End chat").click()
    expect(panel.locator("li.msg-system[data-kind=ended_by_customer]")).to_be_visible()
    expect(panel.get_by_text("This conversation has ended.")).to_be_visible()
    expect(end).to_be_hidden()
    mine = Conversation.objects.filter(workstream=live.workstream).order_by("-pk").first()
    assert mine.status == "closed"
    assert mine.ended_by == "customer"


def test_an_anonymous_visitor_keeps_the_same_visitor_token_across_a_reload(live_url, new_page, live, alice):
    page = new_page()
    panel = open_demo(page, live_url, "live")
    write(panel, "First visit")
    sent(panel, "First visit")
    page.reload()
    panel = page.frame_locator("[data-omnichannel-widget] iframe")
    expect(panel.locator("li.msg-customer", has_text="First visit")).to_be_visible()
    write(panel, "Still me")
    sent(panel, "Still me")
    assert Customer.objects.filter(widget=live).count() == 1
    assert Conversation.objects.filter(workstream=live.workstream).count() == 1


def test_an_offline_live_widget_says_when_it_opens_again_and_has_no_composer(live_url, new_page, live):
    from zoneinfo import ZoneInfo

    hours = OperatingHoursFactory(name="Office", time_zone="Europe/Copenhagen")
    for weekday in range(7):
        OperatingIntervalFactory(hours=hours, weekday=weekday, opens_at="09:00", closes_at="17:00")
    today = datetime.now(ZoneInfo("Europe/Copenhagen")).date()
    hours.closed_dates.create(date=today, label="Closed today")
    live.operating_hours = hours
    live.save()
    opening = hours.next_opening()
    assert opening is not None and opening.date() > today

    page = new_page(locale="en-US")
    panel = open_demo(page, live_url, "live")
    notice = panel.get_by_text(re.compile("We open again"))
    expect(notice).to_be_visible()
    expect(notice).to_have_text(re.compile(f"We open again on {opening.astimezone(UTC):%A}"))
    expect(panel.get_by_label("Your message")).to_be_hidden()
    expect(panel.get_by_role("button", name="End chat")).to_be_hidden()


# --- Reconnecting, gaps, retries ---------------------------------------------------------------------------


def test_after_a_network_drop_the_panel_reconnects_and_fills_the_gap_without_duplicates(
    live_url, new_page, persistent, alice
):
    page = new_page()
    panel = open_demo(page, live_url, "persistent", customer_token(persistent))
    write(panel, "Before the drop")
    sent(panel, "Before the drop")
    expect(panel.locator("li.msg-system[data-kind=agent_joined]")).to_be_visible()
    conversation = current_conversation(persistent)

    page.context.set_offline(True)
    expect(panel.get_by_text("Connection lost. Reconnecting…")).to_be_visible()
    agent_writes(conversation.pk, alice, "Written while you were offline (1)")
    agent_writes(conversation.pk, alice, "Written while you were offline (2)")
    page.wait_for_timeout(500)
    assert panel.locator("li.msg-agent", has_text="offline").count() == 0
    page.context.set_offline(False)

    expect(panel.locator("li.msg-agent", has_text="offline (2)")).to_be_visible()
    expect(panel.get_by_text("Connected again.")).to_be_visible()
    agent_writes(conversation.pk, alice, "And after it")
    expect(panel.locator("li.msg-agent", has_text="And after it")).to_be_visible()
    seqs = [int(s) for s in panel.locator("li.msg").evaluate_all("(items) => items.map((i) => i.dataset.seq)")]
    assert seqs == list(range(1, conversation.messages.count() + 1))


def test_a_message_frame_the_channel_layer_lost_is_fetched_by_seq(live_url, new_page, persistent, alice, monkeypatch):
    page = new_page()
    panel = open_demo(page, live_url, "persistent", customer_token(persistent))
    write(panel, "Hello")
    sent(panel, "Hello")
    conversation = current_conversation(persistent)

    real_send_now = events.publish_now

    def lossy(groups, frame):
        if frame.get("type") == "message" and frame["message"]["body"] == "Lost on the way":
            return  # the layer dropped it
        real_send_now(groups, frame)

    monkeypatch.setattr(events, "publish_now", lossy)
    agent_writes(conversation.pk, alice, "Lost on the way")
    agent_writes(conversation.pk, alice, "Arrived")
    expect(panel.locator("li.msg-agent")).to_have_count(2)
    expect(panel.locator("li.msg-agent").nth(0)).to_have_text(re.compile("Lost on the way"))
    expect(panel.locator("li.msg-agent").nth(1)).to_have_text(re.compile("Arrived"))
    assert panel.locator("li.msg").count() == conversation.messages.count()


def test_a_failed_message_is_retried_with_the_same_client_id(
    live_url, new_page, persistent, alice, monkeypatch, settings
):
    from conversations.errors import Unavailable

    real_send = services.customer_message_send
    seen: list[str] = []

    def flaky(**kwargs):
        seen.append(kwargs["client_id"])
        if len(seen) == 1:
            raise Unavailable()
        return real_send(**kwargs)

    monkeypatch.setattr(services, "customer_message_send", flaky)
    settings.FAST_PATH_CONNECTIONS = 0  # every message through the full path, where the failure is
    page = new_page()
    panel = open_demo(page, live_url, "persistent", customer_token(persistent))
    write(panel, "Try me")
    message = panel.locator("li.msg-customer", has_text="Try me")
    expect(message).to_have_attribute("data-state", "failed")
    expect(message).to_contain_text("Not sent.")
    message.get_by_role("button", name="Retry").click()
    expect(message).to_have_attribute("data-state", "sent")
    assert len(seen) == 2 and seen[0] == seen[1]
    stored = Message.objects.get(sender="customer", body="Try me")
    assert stored.client_id == seen[0]
    expect(panel.locator("li.msg-customer")).to_have_count(1)


# --- The loader: launcher, unread badge, tokens, keyboard ---------------------------------------------------


def test_the_customers_token_is_in_no_request_url_and_no_socket_url(live_url, new_page, persistent, live, alice):
    """Tokens travel in the Authorization header and the socket's auth frame only: a URL ends up
    in access logs, proxies and Referer headers. The demo page takes its token after #, which
    the browser never sends."""
    token = customer_token(persistent)
    page = new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", lambda socket: urls.append(socket.url))
    panel = open_demo(page, live_url, "persistent", token)
    write(panel, "Hello")
    sent(panel, "Hello")
    expect(page.locator("#token-from-address")).to_be_visible()
    # The anonymous widget's visitor token, too.
    visitor_page = new_page()
    visitor_page.on("request", lambda request: urls.append(request.url))
    visitor_page.on("websocket", lambda socket: urls.append(socket.url))
    visitor_panel = open_demo(visitor_page, live_url, "live")
    write(visitor_panel, "Hi")
    sent(visitor_panel, "Hi")
    visitor_token = (
        visitor_page.frame_locator("[data-omnichannel-widget] iframe")
        .locator("body")
        .evaluate("() => localStorage.getItem('omnichannel.visitor.live')")
    )
    assert any("/ws/widget/persistent/" in url for url in urls) and any("/ws/widget/live/" in url for url in urls)
    assert any("/api/v1/widget/live/visitor/" in url for url in urls)
    assert visitor_token
    assert [url for url in urls if token in url or visitor_token in url] == []


def test_the_launcher_counts_unread_messages_while_minimised_and_bodies_stay_text(
    live_url, new_page, persistent, alice
):
    page = new_page()
    panel = open_demo(page, live_url, "persistent", customer_token(persistent))
    write(panel, "Hello")
    sent(panel, "Hello")
    conversation = current_conversation(persistent)
    launcher = page.locator("[data-omnichannel-widget] button.launcher")
    panel.get_by_role("button", name="Minimise chat").click()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_be_focused()

    agent_writes(conversation.pk, alice, '<img src=x onerror="window.parent.pwned = 1">')
    agent_writes(conversation.pk, alice, "<b>bold?</b>")
    badge = page.locator("[data-omnichannel-widget] .badge")
    expect(badge).to_have_text("2")
    expect(launcher).to_have_accessible_name(re.compile("2 unread messages"))

    launcher.click()
    expect(badge).to_be_hidden()
    expect(panel.locator("li.msg-agent", has_text='<img src=x onerror="window.parent.pwned = 1">')).to_be_visible()
    expect(panel.locator("li.msg-agent", has_text="<b>bold?</b>")).to_be_visible()
    assert panel.locator("li.msg img, li.msg b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_keyboard_only_open_write_new_line_send_and_close(live_url, new_page, persistent, alice):
    page = new_page()
    page.goto(f"{live_url}/widget/persistent/demo/#token={customer_token(persistent)}")
    launcher = page.locator("[data-omnichannel-widget] button.launcher")
    expect(launcher).to_be_visible()
    launcher.focus()
    page.keyboard.press("Enter")
    panel = page.frame_locator("[data-omnichannel-widget] iframe")
    box = panel.get_by_label("Your message")
    expect(box).to_be_focused()
    page.keyboard.type("Line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Line two")
    page.keyboard.press("Enter")
    message = sent(panel, "Line one")
    assert message.locator(".msg-bubble").inner_text() == "Line one\nLine two"
    expect(box).to_have_value("")
    page.keyboard.press("Escape")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_be_focused()


def test_a_signed_widget_without_a_token_asks_the_customer_to_sign_in(live_url, new_page, persistent):
    page = new_page()
    panel = open_demo(page, live_url, "persistent")
    expect(panel.get_by_text("Sign in on the website to chat.")).to_be_visible()
    expect(panel.get_by_label("Your message")).to_be_hidden()


def host_gives_tokens(page, first: str, then: str) -> None:
    """The host page's ``getAuthToken`` answers ``first``, then ``then`` on every later call;
    ``window.tokenCalls`` counts the calls."""
    page.add_init_script(
        f"""if (window.top === window) {{
            window.tokenCalls = 0;
            window.OmnichannelWidget = {{
                getAuthToken: async () => (++window.tokenCalls === 1 ? "{first}" : "{then}"),
            }};
        }}"""
    )


def test_the_loader_asks_get_auth_token_again_when_the_token_expired(live_url, new_page, persistent, alice):
    expired = customer_token(persistent, minutes=-5)
    fresh = customer_token(persistent)
    page = new_page()
    host_gives_tokens(page, expired, fresh)
    panel = open_demo(page, live_url, "persistent")
    write(panel, "Signed in again")
    sent(panel, "Signed in again")
    assert page.evaluate("window.tokenCalls") == 2


def test_the_panel_renews_a_token_about_to_expire_on_the_open_socket(live_url, new_page, persistent, alice):
    """A token a minute and a few seconds from its exp: the panel asks the host for a fresh one
    and sends it in an auth frame on the same socket (answered ready), instead of waiting for
    the server to close the socket (4401)."""
    expiring = customer_token(persistent, minutes=63 / 60)
    fresh = customer_token(persistent)
    page = new_page()
    sockets, auth_tokens = [], []
    page.on("websocket", lambda ws: (sockets.append(ws), ws.on("framesent", lambda payload: record(payload))))

    def record(payload):
        frame = json.loads(payload) if isinstance(payload, str) else {}
        if frame.get("type") == "auth":
            auth_tokens.append(frame["token"])

    host_gives_tokens(page, expiring, fresh)
    panel = open_demo(page, live_url, "persistent")
    write(panel, "Before the renewal")
    sent(panel, "Before the renewal")
    wait_until(page, lambda: auth_tokens == [expiring, fresh])
    write(panel, "After the renewal")
    sent(panel, "After the renewal")
    assert len(sockets) == 1 and not sockets[0].is_closed()
    assert page.evaluate("window.tokenCalls") == 2


# --- Embedding on another origin, and postMessage checks ------------------------------------------------------


@pytest.fixture
def website():
    """``website(html) -> origin``: a customer's website on its own loopback port (another
    origin, and an address space from which Chromium lets the page load the widget)."""
    servers = []

    def serve(html: str) -> str:
        body = html.encode()

        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def snippet_page(live_url: str, widget_key: str, token: str = "") -> str:
    """A page of the website with the admin's snippet (and the customer's token)."""
    token_attribute = f' data-token="{token}"' if token else ""
    return (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>The shop</h1>"
        f'<script src="{live_url}/static/omnichannel-widget.js" data-widget-key="{widget_key}" '
        f'data-server="{live_url}"{token_attribute} async></script></body></html>'
    )


def test_the_widget_chats_on_an_allowed_site_of_another_origin(live_url, new_page, persistent, alice, website):
    shop = website(snippet_page(live_url, "persistent", customer_token(persistent)))
    persistent.allowed_origins = f"https://shop.example.com\n{shop}"
    persistent.save()
    page = new_page()
    page.goto(shop)
    launcher = page.locator("[data-omnichannel-widget] button.launcher")
    launcher.click()
    panel = page.frame_locator("[data-omnichannel-widget] iframe")
    write(panel, "Hello from the shop")
    sent(panel, "Hello from the shop")
    conversation = current_conversation(persistent)
    panel.get_by_role("button", name="Minimise chat").click()
    expect(launcher).to_be_focused()
    agent_writes(conversation.pk, alice, "Hello, shop customer")
    expect(page.locator("[data-omnichannel-widget] .badge")).to_have_text("1")


def test_a_site_that_is_not_allowed_cannot_frame_the_panel(live_url, new_page, persistent, website):
    elsewhere = website(snippet_page(live_url, "persistent", customer_token(persistent)))
    page = new_page()
    page.goto(elsewhere)
    page.wait_for_timeout(1500)
    # The browser refused the frame (CSP frame-ancestors): no panel said it was ready.
    expect(page.locator("[data-omnichannel-widget] button.launcher")).to_be_hidden()
    panel_frames = [frame for frame in page.frames if "/widget/persistent/" in frame.url]
    assert all(frame.locator("#panel").count() == 0 for frame in panel_frames)


def test_the_panel_takes_a_token_only_from_its_parent_window(live_url, new_page, persistent):
    page = new_page()
    panel = open_demo(page, live_url, "persistent")
    expect(panel.get_by_text("Sign in on the website to chat.")).to_be_visible()
    token = customer_token(persistent)
    # Another window of the same page (an ad, say) posts a token: ignored. (The script runs in
    # that window through Playwright: the page's CSP rightly forbids eval.)
    page.evaluate(
        """() => {
            const other = document.createElement("iframe");
            other.name = "intruder";
            document.body.append(other);
        }"""
    )
    page.frame(name="intruder").evaluate(
        """(token) => {
            const host = window.parent.document.querySelector("[data-omnichannel-widget]");
            const panel = host.shadowRoot.querySelector("iframe");
            panel.contentWindow.postMessage({omnichannel: "host", type: "token", token: token}, "*");
        }""",
        token,
    )
    page.wait_for_timeout(500)
    expect(panel.get_by_text("Sign in on the website to chat.")).to_be_visible()
    # The host page signs the customer in: the loader hands the panel the new token.
    page.evaluate(
        """(token) => {
            document.querySelector("script[data-widget-key]").setAttribute("data-token", token);
            window.OmnichannelWidget.refreshToken();
        }""",
        token,
    )
    expect(panel.get_by_label("Your message")).to_be_visible()
    write(panel, "Signed in now")
    sent(panel, "Signed in now")


def test_the_loader_ignores_messages_that_do_not_come_from_its_panel(live_url, new_page, persistent, alice):
    page = new_page()
    open_demo(page, live_url, "persistent", customer_token(persistent))
    launcher = page.locator("[data-omnichannel-widget] button.launcher")
    launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    page.evaluate("window.postMessage({omnichannel: 'panel', type: 'message', sender: 'agent'}, '*')")
    page.wait_for_timeout(300)
    expect(page.locator("[data-omnichannel-widget] .badge")).to_be_hidden()


# --- Screenshots (docs/screenshots/) ---------------------------------------------------------------------


def _screenshot_story(live_url, new_page, widget, agent, *, width, height, locale, name, folder, language="en"):
    widget.language = language
    widget.title = "Chat med os" if language == "da" else "Chat with us"
    widget.subtitle = (
        "Vi svarer normalt inden for få minutter" if language == "da" else "We usually answer within minutes"
    )
    widget.save()
    page = new_page(width=width, height=height, locale=locale)
    panel = open_demo(page, live_url, widget.widget_key, customer_token(widget, sub=f"shot-{name}", name="Carol"))
    question = "Hej! Min pakke er ikke kommet endnu." if language == "da" else "Hi! My parcel has not arrived yet."
    write(panel, question, label="Din besked" if language == "da" else "Your message")
    sent(panel, question)
    expect(panel.locator("li.msg-system[data-kind=agent_joined]")).to_be_visible()
    conversation = current_conversation(widget, customer__external_id=f"shot-{name}")
    answer = (
        "Det er jeg ked af at høre. Jeg kigger på det med det samme – hvad er dit ordrenummer?"
        if language == "da"
        else "Sorry to hear that! I am looking into it right away. What is your order number?"
    )
    agent_writes(conversation.pk, agent, answer)
    expect(panel.locator("li.msg-agent")).to_be_visible()
    panel.get_by_label("Your message" if language == "en" else "Din besked").fill(
        "#10482" if language == "en" else "Nr. 10482"
    )
    page.wait_for_timeout(300)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))
    off_thread(services.conversation_end, conversation_id=conversation.pk, agent=agent)
    off_thread(services.conversation_close, conversation_id=conversation.pk, agent=agent)


SHOTS = [  # name, width, height, browser locale, widget language
    ("widget-desktop.png", 1280, 800, "en-GB", "en"),
    ("widget-phone.png", 360, 740, "en-GB", "en"),
    ("widget-da.png", 1280, 800, "da-DK", "da"),
]


def test_screenshots_of_the_widget_on_the_demo_page(live_url, new_page, persistent, alice, tmp_path):
    folder = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    for name, width, height, locale, language in SHOTS:
        _screenshot_story(
            live_url,
            new_page,
            persistent,
            alice,
            width=width,
            height=height,
            locale=locale,
            name=name,
            folder=folder,
            language=language,
        )
        assert (folder / name).stat().st_size > 10_000
