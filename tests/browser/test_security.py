"""XSS and CSP in Chromium: markup in message bodies and customer names stays text in the
widget, the inbox (rendered by the server and by its JavaScript), the supervisor view, the admin
and the inline transcript; no alert() ever opens, and no page breaks its own
Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from tests.browser.test_widget import current_conversation, customer_token, open_demo, write
from tests.xss import BODIES, NAME

pytestmark = pytest.mark.browser

# Anything of a payload that a browser would run, in one frame; the widget's launcher lives in
# a shadow root, which querySelectorAll does not enter, so shadow roots are walked too.
LIVE_MARKUP = """() => {
  const found = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll("*")) {
      for (const name of el.getAttributeNames()) if (name.startsWith("on")) found.push(`${el.tagName} ${name}`);
      const href = el.getAttribute("href") || el.getAttribute("src") || el.getAttribute("action") || "";
      if (/^\\s*javascript:/i.test(href)) found.push(`${el.tagName} javascript: URL`);
      if (el.tagName === "IMG" && el.getAttribute("src") === "x") found.push("IMG src=x");
      if (el.tagName === "SCRIPT" && el.type !== "application/json" && el.textContent.includes("alert(1)"))
        found.push("SCRIPT alert(1)");
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return found;
}"""


class Watch:
    """Every dialog (alert, confirm) and every CSP violation the pages report."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.violations: list[str] = []

    def page(self, page):
        def on_dialog(dialog):
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on(
            "console",
            lambda message: self.violations.append(message.text) if "Content Security Policy" in message.text else None,
        )
        return page

    def assert_inert(self, page) -> None:
        for frame in page.frames:
            assert frame.evaluate(LIVE_MARKUP) == [], frame.url
        assert self.dialogs == []
        assert self.violations == []


def message(scope, selector: str, body: str):
    """The message whose text is exactly ``body`` (one payload is a part of another)."""
    return scope.locator(selector, has=scope.get_by_text(body, exact=True))


def sent(panel, body: str) -> None:
    expect(message(panel, "li.msg-customer", body)).to_have_attribute("data-state", "sent")


@pytest.fixture
def watch():
    return Watch()


def signed_in(new_page, watch: Watch, live_url: str, user, path: str):
    client = Client()
    client.force_login(user)
    page = watch.page(new_page())
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_url}])
    page.goto(live_url + path)
    return page


def test_markup_in_bodies_and_names_stays_text_in_the_widget_inbox_supervisor_view_and_admin(
    live_url, new_page, watch, persistent, alice
):
    alice.user.is_staff = alice.user.is_superuser = True
    alice.user.save()
    agent = signed_in(new_page, watch, live_url, alice.user, "/agent/")
    expect(agent.locator("#connection")).to_have_attribute("data-state", "connected")
    customer = watch.page(new_page())
    panel = open_demo(customer, live_url, "persistent", customer_token(persistent, sub="mallory", name=NAME))

    # The first message reaches the inbox's list live; the agent opens the conversation.
    write(panel, BODIES[0])
    sent(panel, BODIES[0])
    conversation = current_conversation(persistent)
    row = agent.locator(f"a.row[data-conversation-id='{conversation.pk}']")
    expect(row).to_contain_text(NAME)
    row.click()
    expect(agent.locator("#conversation-view h1")).to_have_text(NAME)

    # The rest arrive over the socket and the inbox's JavaScript renders them.
    for body in BODIES[1:]:
        write(panel, body)
        sent(panel, body)
    for body in BODIES:
        expect(message(agent, "#messages li.msg-customer", body)).to_have_count(1)
    watch.assert_inert(agent)

    # The agent answers with the same markup; the widget renders it as text.
    composer = agent.get_by_label("Your reply")
    for body in BODIES:
        composer.fill(body)
        composer.press("Enter")
        expect(message(agent, "#messages li.msg-agent", body)).to_have_count(1)
        expect(message(panel, "li.msg-agent", body)).to_be_visible()
    expect(agent.locator("#messages li.msg-agent .msg-status").last).to_have_text("Sent")
    watch.assert_inert(agent)
    watch.assert_inert(customer)

    # The same conversation rendered by the server.
    agent.reload()
    for body in BODIES:
        expect(message(agent, "#messages li.msg", body)).to_have_count(2)
    expect(agent).to_have_title(re.compile(re.escape(NAME)))
    watch.assert_inert(agent)

    pages = [
        ("/agent/supervisor/", NAME),
        (f"/agent/conversations/{conversation.pk}/history/", BODIES[1]),
        (f"/admin/conversations/conversation/{conversation.pk}/change/", BODIES[1]),
        ("/admin/conversations/conversation/", NAME),
        ("/admin/conversations/customer/", NAME),
        (f"/admin/conversations/customer/{conversation.customer_id}/change/", NAME),
    ]
    for path, text in pages:
        agent.goto(live_url + path)
        expect(agent.get_by_text(text, exact=False).first).to_be_attached()
        watch.assert_inert(agent)


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/admin/login/", "/widget/live/demo/"])
def test_the_public_pages_run_under_their_policy_without_violations(live_url, new_page, watch, live, path):
    page = watch.page(new_page())
    page.goto(live_url + path)
    if path.startswith("/widget/"):
        launcher = page.locator("[data-omnichannel-widget] button.launcher")
        launcher.click()
        panel = page.frame_locator("[data-omnichannel-widget] iframe")
        expect(panel.get_by_label("Your message")).to_be_visible()
    page.wait_for_load_state("networkidle")
    watch.assert_inert(page)


def test_the_language_switcher_works_without_inline_script(live_url, new_page, watch, db):
    page = watch.page(new_page())
    page.goto(live_url + "/accounts/login/")
    page.select_option("#language-select", "da")
    expect(page.locator("h1")).to_have_text("Log ind i indbakken")
    watch.assert_inert(page)


def test_every_admin_add_and_change_page_runs_under_the_policy(live_url, new_page, watch, persistent, superuser):
    """The admin's own scripts (inlines, filter widgets, calendars) work without inline code."""
    from django.contrib import admin

    page = signed_in(new_page, watch, live_url, superuser, "/admin/")
    for model in admin.site._registry:
        opts = model._meta
        for path in (f"/admin/{opts.app_label}/{opts.model_name}/add/", f"/admin/{opts.app_label}/{opts.model_name}/"):
            page.goto(live_url + path)
            page.wait_for_load_state("load")
            assert watch.violations == [], path
    page.goto(f"{live_url}/admin/workstreams/workstream/{persistent.workstream_id}/change/")
    page.get_by_role("link", name=re.compile("Add another")).first.click()
    watch.assert_inert(page)


VIOLATIONS = """window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sample}`);
});"""


def test_the_widgets_copy_button_copies_the_embed_snippet_under_the_policy(live_url, new_page, watch, live, superuser):
    """Issue #19: the button's (and the snippet's) inline onclick was refused by the policy, so
    Copy did nothing. Now static/admin.js: a click selects the snippet, Copy puts it on the
    clipboard, and the page reports no violation."""
    client = Client()
    client.force_login(superuser)
    page = watch.page(new_page())
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_url}])
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_url)
    page.add_init_script(VIOLATIONS)
    page.goto(f"{live_url}/admin/workstreams/chatwidget/{live.pk}/change/")
    field = page.locator("#embed-snippet")
    snippet = field.input_value()
    assert 'data-widget-key="live"' in snippet

    field.click()
    assert field.evaluate("element => element.value.slice(element.selectionStart, element.selectionEnd)") == snippet
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == snippet
    assert page.evaluate("window.__violations") == []
    watch.assert_inert(page)
