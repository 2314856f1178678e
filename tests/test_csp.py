"""Content-Security-Policy (omnichannel/csp.py): every page gets a strict policy; scripts are
never inline; the widget's panel may be framed by its allowed origins only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cast import (  # noqa: F401 - fixtures
    alice,
    bob,
    broadcasts,
    commit,
    customer,
    eager_celery,
    live,
    other_customer,
    persistent,
    queue,
    visitor,
)
from tests.factories import UserFactory

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def csp(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    header = response["Content-Security-Policy"]
    directives = [part.strip().split() for part in header.split(";")]
    return {name: sources for name, *sources in directives}


def nonce_in(html: str, tag: str) -> str:
    match = re.search(rf'<{tag}[^>]* nonce="([^"]+)"', html)
    assert match, f"no <{tag} nonce=...> in the page"
    return match.group(1)


@pytest.fixture
def staff_client(client, alice):
    alice.user.is_staff = alice.user.is_superuser = True
    alice.user.save()
    client.force_login(alice.user)
    return client


@pytest.mark.parametrize(
    "path", ["/", "/accounts/login/", "/agent/", "/agent/supervisor/", "/admin/", "/admin/login/", "/widget/live/demo/"]
)
def test_pages_allow_only_same_origin_scripts_and_refuse_framing(staff_client, live, path):
    response = staff_client.get(path, follow=True)
    assert response.status_code == 200
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert [s for s in policy["script-src"] if not s.startswith("'nonce-")] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_the_inbox_may_open_its_websocket_on_this_host(staff_client):
    assert csp(staff_client.get("/agent/"))["connect-src"] == ["'self'", "ws://testserver"]


def test_over_https_the_websocket_source_is_wss(staff_client):
    response = staff_client.get("/agent/", secure=True)
    assert csp(response)["connect-src"] == ["'self'", "wss://testserver"]


def test_the_panel_policy_allows_its_styles_nonce_and_its_socket_only(client, live):
    live.allowed_origins = "https://shop.example.com"
    live.save()
    response = client.get("/widget/live/")
    policy = csp(response)
    nonce = nonce_in(response.content.decode(), "style")
    assert policy["style-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert policy["script-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert policy["connect-src"] == ["'self'", "ws://testserver"]
    assert policy["frame-ancestors"] == ["'self'", "https://shop.example.com"]


def test_every_response_has_a_fresh_nonce(client, live):
    first = nonce_in(client.get("/widget/live/").content.decode(), "style")
    second = nonce_in(client.get("/widget/live/").content.decode(), "style")
    assert first != second


def test_the_demo_page_gives_the_loader_the_nonce_for_its_styles(client, live):
    response = client.get("/widget/live/demo/")
    nonce = nonce_in(response.content.decode(), "script")
    assert f"'nonce-{nonce}'" in csp(response)["style-src"]


def test_a_page_that_uses_no_nonce_does_not_announce_one(client):
    policy = csp(client.get("/accounts/login/"))
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]


def test_api_responses_carry_the_policy_too(client):
    response = client.get("/api/nowhere/")
    assert response.status_code == 404
    assert csp(response)["frame-ancestors"] == ["'none'"]


def test_the_api_docs_load_swagger_from_its_cdn_without_inline_scripts(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>" not in html
    assert "https://cdn.jsdelivr.net" in csp(response)["script-src"]
    assert "'unsafe-inline'" not in csp(response)["script-src"]
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


def test_a_forged_host_header_is_a_400_not_a_500(client):
    response = client.get("/accounts/login/", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    assert "ws://" not in response["Content-Security-Policy"]


def test_no_template_has_an_inline_script_event_handler_or_style_attribute():
    """Anything inline would be refused by the policy: scripts are static files (a JSON data
    block is not a script), styles are classes, and a ``<script>`` or ``<style>`` that must be
    inline has the nonce."""
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        if template.parent.name == "emails":
            continue  # the HTML part of an email: read by mail clients, which need inline styles
        html = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            if "src=" not in tag and 'type="application/json"' not in tag and "nonce=" not in tag:
                offenders.append(f"{template.relative_to(TEMPLATES)}: {tag}")
        for tag in re.findall(r"<style\b[^>]*>", html):
            if "nonce=" not in tag:
                offenders.append(f"{template.relative_to(TEMPLATES)}: {tag}")
        for attribute in re.findall(r"<[a-zA-Z][^>]*\s(on[a-z]+|style)\s*=", html):
            offenders.append(f"{template.relative_to(TEMPLATES)}: {attribute}=")
        if re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", html, re.I):
            offenders.append(f"{template.relative_to(TEMPLATES)}: javascript: URL")
    assert offenders == []


def test_a_user_without_pages_still_gets_the_policy_on_errors(client, db):
    client.force_login(UserFactory(username="nobody"))
    response = client.get("/agent/")
    assert response.status_code == 403
    assert csp(response)["frame-ancestors"] == ["'none'"]
