"""The widget's pages: the chat panel for the iframe and the demo host page."""

from __future__ import annotations

import json
import re

import jwt
import pytest
from django.contrib.staticfiles import finders
from django.test import override_settings

from tests.factories import AuthenticationSettingFactory, ChatWidgetFactory, UserFactory, WorkstreamFactory
from workstreams.demo import seed_demo


def panel_config(response) -> dict:
    match = re.search(rb'<script id="widget-config" type="application/json">(.*?)</script>', response.content, re.S)
    assert match, "the panel has no widget-config JSON"
    return json.loads(match.group(1))


def test_the_panel_shows_the_widgets_title_subtitle_and_colour(client, live):
    live.title, live.subtitle, live.colour = "Talk to Support", "We answer within minutes", "#0f766e"
    live.save()
    response = client.get("/widget/live/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 id="panel-title">Talk to Support</h1>' in html
    assert "We answer within minutes" in html
    assert "--accent: #0f766e" in html
    assert 'aria-live="polite"' in html
    assert '<html lang="en">' in html


def test_the_panel_tells_its_script_the_mode_credentials_and_endpoints(client, live, persistent):
    live_config = panel_config(client.get("/widget/live/"))
    assert live_config["mode"] == "live"
    assert live_config["customerCanEnd"] is True
    assert live_config["authRequired"] is False
    assert live_config["api"] == "/api/v1/widget/live/"
    assert live_config["socket"] == "/ws/widget/live/"
    assert live_config["allowedOrigins"] == ["https://shop.example.com"]
    persistent_config = panel_config(client.get("/widget/persistent/"))
    assert persistent_config["mode"] == "persistent"
    assert persistent_config["customerCanEnd"] is False
    assert persistent_config["authRequired"] is True


def test_live_chat_has_an_end_button_and_persistent_chat_a_come_back_note(client, live, persistent):
    live_html = client.get("/widget/live/").content.decode()
    assert 'id="end-button"' in live_html
    assert 'id="end-dialog"' in live_html
    assert 'id="persistent-note"' not in live_html
    persistent_html = client.get("/widget/persistent/").content.decode()
    assert 'id="end-button"' not in persistent_html
    assert "You can close this window and come back any time" in persistent_html


def test_the_panel_is_in_the_widgets_language_danish(client, live):
    live.language = "da"
    live.save()
    response = client.get("/widget/live/", HTTP_ACCEPT_LANGUAGE="en")
    html = response.content.decode()
    assert response["Content-Language"] == "da"
    assert '<html lang="da">' in html
    assert "Afslut chat" in html
    assert "Skriv en besked…" in html
    strings = panel_config(response)["strings"]
    assert strings["retry"] == "Prøv igen"
    assert strings["signIn"] == "Log ind på hjemmesiden for at chatte."


def test_the_panel_is_in_english_for_an_english_widget_whatever_the_browser_asks(client, live):
    response = client.get("/widget/live/", HTTP_ACCEPT_LANGUAGE="da")
    assert response["Content-Language"] == "en"
    assert "End chat" in response.content.decode()
    assert panel_config(response)["strings"]["retry"] == "Retry"


def csp(response) -> dict[str, str]:
    """The Content-Security-Policy header as {directive: sources}."""
    directives = [part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")]
    return {name: (rest[0] if rest else "") for name, *rest in directives}


def test_the_panel_may_be_framed_by_its_allowed_origins_only(client, live):
    live.allowed_origins = "https://shop.example.com\nhttps://www.example.org:8443\n"
    live.save()
    response = client.get("/widget/live/")
    assert csp(response)["frame-ancestors"] == "'self' https://shop.example.com https://www.example.org:8443"
    assert "X-Frame-Options" not in response


def test_a_widget_without_allowed_origins_may_be_framed_by_this_server_only(client, live):
    live.allowed_origins = ""
    live.save()
    assert csp(client.get("/widget/live/"))["frame-ancestors"] == "'self'"


def test_stored_origins_that_are_not_origins_never_reach_the_csp_header(client, live):
    # Saved around the admin's validation: nothing may inject CSP directives.
    live.allowed_origins = "https://ok.example.com\nhttps://evil.example.com; script-src *\n*"
    live.save()
    response = client.get("/widget/live/")
    policy = csp(response)
    assert policy["frame-ancestors"] == "'self' https://ok.example.com"
    assert "evil" not in response["Content-Security-Policy"]
    assert "*" not in policy["script-src"]
    assert panel_config(response)["allowedOrigins"] == ["https://ok.example.com"]


def test_other_pages_still_refuse_framing(client, live):
    assert client.get("/widget/live/demo/")["X-Frame-Options"] == "DENY"


def test_an_unknown_widget_key_is_not_found(client, live):
    assert client.get("/widget/nope/").status_code == 404
    assert client.get("/widget/nope/demo/").status_code == 404


def test_widget_texts_are_escaped_in_html_and_in_the_script_config(client, live):
    live.title = '</script><script>alert("t")</script>'
    live.subtitle = "<img src=x onerror=alert(1)>"
    live.save()
    html = client.get("/widget/live/").content.decode()
    assert "<script>alert(" not in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    config = panel_config(client.get("/widget/live/"))
    assert config["title"] == live.title


def test_the_panel_is_not_cached(client, live):
    assert "no-cache" in client.get("/widget/live/")["Cache-Control"]


def test_the_loader_and_the_panel_assets_are_static_files():
    for name in ("omnichannel-widget.js", "widget/panel.js", "widget/panel.css", "widget/demo.css"):
        assert finders.find(name), name


def test_the_panels_script_renders_bodies_as_text_only():
    source = open(finders.find("widget/panel.js"), encoding="utf-8").read()
    assert "innerHTML" not in source
    assert "bubble.textContent = message.body" in source


# --- The demo host page -----------------------------------------------------------------------------


def loader_tag(html: str) -> str:
    """The page's one loader tag (two would race: whichever loads first owns the widget)."""
    tags = re.findall(r"<script src=\"[^\"]*omnichannel-widget\.js\"[^>]*>", html)
    assert len(tags) == 1, f"{len(tags)} loader script tags"
    return tags[0]


def data_token(html: str) -> str | None:
    match = re.search(r'data-token="([^"]*)"', loader_tag(html))
    return match.group(1) if match else None


def test_the_demo_page_embeds_the_loader_with_the_widget_key_and_this_server(client, live):
    html = client.get("/widget/live/demo/").content.decode()
    tag = loader_tag(html)
    assert 'src="http://testserver/static/omnichannel-widget.js"' in tag
    assert 'data-widget-key="live"' in tag
    assert 'data-server="http://testserver"' in tag
    assert "async" in tag
    assert data_token(html) is None
    assert "data-widget-key=&quot;live&quot;" in html  # the snippet, shown to copy


@pytest.fixture
def demo_widgets(db, settings):
    settings.SITE_URL = "http://testserver"
    return {widget.widget_key: widget for widget in seed_demo().widgets}


@override_settings(DEBUG=True)
def test_in_debug_the_demo_page_signs_a_token_for_the_demo_customer(client, demo_widgets):
    html = client.get("/widget/demo-persistent/demo/").content.decode()
    token = data_token(html)
    assert token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "demo-customer"
    assert claims["iss"] == "omnichannel-demo-site"


@override_settings(DEBUG=True)
def test_the_demo_customer_is_chosen_with_a_query_parameter(client, demo_widgets):
    html = client.get("/widget/demo-persistent/demo/", {"customer": "alice"}).content.decode()
    assert jwt.decode(data_token(html), options={"verify_signature": False})["sub"] == "alice"
    assert "“alice”" in html


def test_without_debug_the_demo_page_signs_tokens_for_staff_only(client, demo_widgets):
    html = client.get("/widget/demo-persistent/demo/").content.decode()
    assert data_token(html) is None
    assert "python manage.py demo_token" in html
    client.force_login(UserFactory(username="visitor"))
    assert data_token(client.get("/widget/demo-persistent/demo/").content.decode()) is None
    client.force_login(UserFactory(username="staff", is_staff=True))
    token = data_token(client.get("/widget/demo-persistent/demo/").content.decode())
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "demo-customer"


def test_the_demo_page_never_signs_for_another_authentication_setting(client, persistent, superuser, settings):
    settings.DEBUG = True
    client.force_login(superuser)
    html = client.get("/widget/persistent/demo/").content.decode()
    assert data_token(html) is None
    assert "Sign a token" in html


def test_a_token_in_the_query_string_is_ignored_never_echoed(client, persistent):
    """A token in a URL's query reaches access logs, proxies and Referer headers; the demo page
    takes one after # instead, which never leaves the browser (static/widget/demo.js)."""
    html = client.get("/widget/persistent/demo/", {"token": "eyJhbGciOi.secret-token.sig"}).content.decode()
    assert data_token(html) is None
    assert "secret-token" not in html
    assert "#token=&lt;token&gt;" in html and "?token=" not in html
    assert re.search(r'<script src="/static/widget/demo\.js" nonce="[^"]+"></script>', html)


def test_an_anonymous_live_widget_needs_no_token_on_the_demo_page(client, demo_widgets, settings):
    settings.DEBUG = True
    html = client.get("/widget/demo-live/demo/").content.decode()
    assert data_token(html) is None
    assert 'id="customer"' not in html


def test_the_demo_page_is_in_the_widgets_language(client, live):
    live.language = "da"
    live.save()
    response = client.get("/widget/live/demo/")
    assert '<html lang="da">' in response.content.decode()
    assert "Demobutik" in response.content.decode()


def test_a_widget_of_a_persistent_workstream_without_demo_setting_explains_tokens(client, db):
    widget = ChatWidgetFactory(
        widget_key="shop",
        workstream=WorkstreamFactory(persistent_mode=True),
        authentication_setting=AuthenticationSettingFactory(name="Shop"),
    )
    html = client.get(f"/widget/{widget.widget_key}/demo/").content.decode()
    assert "needs a customer token signed by the website" in html
