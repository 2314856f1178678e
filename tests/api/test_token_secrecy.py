"""Tokens never appear in logs: customer JWTs, visitor tokens and agents' API tokens, valid or
refused, over REST and the sockets, with every logger at DEBUG and Django's SQL debugging on
(an agent's API token is looked up by its digest, so a logged query carries no key). Tokens in URLs: the
browser test test_the_customers_token_is_in_no_request_url_and_no_socket_url, and below."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import jwt
import pytest
from channels.db import database_sync_to_async as in_db
from django.test import RequestFactory
from django.views.debug import SafeExceptionReporterFilter
from rest_framework.test import APIClient

from conversations.customer_tokens import issue_visitor_token
from tests.factories import api_key
from tests.keys import rsa_key
from tests.realtime.conftest import Socket, customer_token

STATIC = Path(__file__).resolve().parents[2] / "static"


def _expired(setting) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "carol", "iss": setting.issuer, "iat": now - 900, "exp": now - 600}, rsa_key(), "RS256")


def _tampered(token: str) -> str:
    return token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")


@pytest.fixture
def everything_logged(caplog, settings):
    settings.DEBUG = True  # Django's cursor then logs every query (at DEBUG, on django.db.backends)
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_absent(caplog, tokens: list[str]) -> None:
    text = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    assert caplog.records, "nothing was logged: the test would prove nothing"
    for token in tokens:
        assert token not in text
        assert token[-24:] not in text  # nor a telling piece of it


@pytest.mark.django_db
def test_no_token_reaches_the_logs_over_rest(everything_logged, persistent, live, alice):
    setting = persistent.authentication_setting
    valid, expired = customer_token(setting), _expired(setting)
    customer = APIClient()
    customer.credentials(HTTP_AUTHORIZATION=f"Bearer {valid}")
    assert customer.get(f"/api/v1/widget/{persistent.widget_key}/conversation/").status_code == 200
    assert customer.post(
        f"/api/v1/widget/{persistent.widget_key}/conversation/messages/", {"body": "Hi"}, format="json"
    ).status_code in (200, 201)
    for refused in (expired, _tampered(valid), "not-a-token"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {refused}")
        assert client.get(f"/api/v1/widget/{persistent.widget_key}/conversation/").status_code == 401

    visitor = APIClient().post(f"/api/v1/widget/{live.widget_key}/visitor/").json()["token"]
    for token, status in ((visitor, 200), (_tampered(visitor), 401)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert client.get(f"/api/v1/widget/{live.widget_key}/conversation/").status_code == status

    key = api_key(alice.user)
    wrong = "f" * 40
    for token, status in ((key, 200), (wrong, 401)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert client.get("/api/v1/agent/me/").status_code == status

    assert_absent(everything_logged, [valid, expired, _tampered(valid), visitor, _tampered(visitor), key, wrong])


@pytest.mark.django_db(transaction=True)
async def test_no_token_reaches_the_logs_over_the_sockets(everything_logged, persistent, live, alice):
    setting = await in_db(lambda: persistent.authentication_setting)()
    valid, expired = customer_token(setting), _expired(setting)
    visitor = await in_db(issue_visitor_token)(live)
    key = await in_db(lambda: api_key(alice.user))()
    wrong = "f" * 40

    async def auth(path: str, token: str, origin: str = "https://shop.example.com") -> str:
        s = Socket(path, origin=origin)
        assert await s.connect()
        await s.send({"type": "auth", "token": token})
        frame = await s.next()
        await s.close()
        return frame["type"]

    widget, live_widget = f"/ws/widget/{persistent.widget_key}/", f"/ws/widget/{live.widget_key}/"
    assert await auth(widget, valid) == "ready"
    assert await auth(widget, expired) == "error"
    assert await auth(widget, _tampered(valid)) == "error"
    assert await auth(live_widget, visitor) == "ready"
    assert await auth(live_widget, _tampered(visitor)) == "error"
    assert await auth("/ws/agent/", key, origin="http://testserver") == "ready"
    assert await auth("/ws/agent/", wrong, origin="http://testserver") == "error"
    # The consumers log nothing on these paths; what they would log from their database threads
    # is captured too:
    await in_db(lambda: logging.getLogger("conversations.consumers").debug("probe from a database thread"))()
    assert "probe from a database thread" in everything_logged.text
    assert_absent(everything_logged, [valid, expired, _tampered(valid), visitor, _tampered(visitor), key, wrong])


def test_error_reports_mask_the_authorization_header():
    """A 500's report (mailed to ADMINS, or in a DEBUG page) shows the request's headers."""
    request = RequestFactory().get("/api/v1/agent/me/", HTTP_AUTHORIZATION="Bearer eyJhbGciOi.secret.sig")
    meta = SafeExceptionReporterFilter().get_safe_request_meta(request)
    assert "secret" not in str(meta["HTTP_AUTHORIZATION"])


def test_the_widgets_scripts_never_put_a_token_in_a_url():
    """The loader, the panel and the demo page: tokens go in the Authorization header, the
    socket's auth frame and postMessage, never in a query string or a path."""
    for script in ("omnichannel-widget.js", "widget/panel.js", "widget/demo.js", "inbox/inbox.js"):
        code = (STATIC / script).read_text()
        assert not re.search(r"[?&](token|access_token|jwt|auth)=", code, re.I), script
        for line in code.splitlines():
            if re.search(r"new (URL|WebSocket)\(|fetch\(|\.src\s*=|location\.(href|assign)", line):
                assert not re.search(r"token", line, re.I), f"{script}: {line.strip()}"
