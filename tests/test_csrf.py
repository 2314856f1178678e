"""CSRF: every state-changing request that a session cookie alone would authenticate is refused
without the CSRF token, with the stable code ``csrf_failed``. The endpoints come from the URL
conf itself, so a new view cannot escape the check; the views that ignore sessions (the
customer API, authenticated by a bearer token) are named, and checked to ignore them."""

from __future__ import annotations

from django.test import Client
from rest_framework.views import APIView

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
from tests.factories import api_key
from tests.urlconf import endpoints, samples, staff_agent, unthrottled  # noqa: F401 - fixtures

UNSAFE = ("post", "put", "patch", "delete")
# Views that never look at the session: CSRF protects nothing there. Each is checked below to
# answer a request with a session exactly as one without.
SESSIONLESS = {
    "api-widget",
    "api-widget-visitor",
    "api-widget-conversation",
    "api-widget-messages",
    "api-widget-end",
    "api-widget-transcript",
    "api-widget-offline-message",
    "api-widget-csat",
    "api-widget-attachments",
    # A raw mail posted by an inbound-mail service (a bearer secret), and the one-click unsubscribe
    # link of an email (a signed token in the URL; mail clients POST it, RFC 8058).
    "api-inbound-email",
    "email-unsubscribe",
    "api-not-found",
}


def is_csrf_refusal(response) -> bool:
    if response.status_code != 403:
        return False
    data = getattr(response, "data", None)  # a DRF response, whatever its renderer (the API docs: HTML)
    if isinstance(data, dict):
        return data.get("code") == "csrf_failed"
    return b"csrf_failed" in response.content


def session_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_the_url_conf_is_walked_whole(samples):
    labels = {label for label, _path, _pattern in endpoints(samples)}
    for expected in ("login", "logout", "set_language", "agents:presence", "agents:mark-read", "agents:action"):
        assert expected in labels
    assert {"agents:supervisor-action", "api-agent-transfer", "admin:login", "admin:logout"} <= labels
    assert SESSIONLESS <= labels
    assert len(labels) > 80  # the admin's pages too


def test_the_sessionless_views_are_only_the_customer_api_the_email_endpoints_and_the_api_not_found(samples):
    """A view that opts out of CSRF must be named in SESSIONLESS (and so checked below)."""
    opted_out = set()
    for label, _path, pattern in endpoints(samples):
        view_class = getattr(pattern.callback, "cls", None)
        if view_class is not None and issubclass(view_class, APIView):
            if not view_class.authentication_classes:
                opted_out.add(label)
        elif getattr(pattern.callback, "csrf_exempt", False):
            opted_out.add(label)
    assert opted_out == SESSIONLESS


def test_every_unsafe_request_with_only_a_session_is_refused_without_the_csrf_token(samples, staff_agent):
    client = session_client(staff_agent.user)
    anonymous = Client(enforce_csrf_checks=True)
    processed = []
    for label, path, _pattern in endpoints(samples):
        for method in UNSAFE:
            response = getattr(client, method)(path, "{}", content_type="application/json")
            if label in SESSIONLESS:
                # The session changes nothing: the answer is the one an anonymous caller gets for
                # the same request.
                alone = getattr(anonymous, method)(path, "{}", content_type="application/json")
                if response.status_code != alone.status_code:
                    processed.append(f"{method.upper()} {path} ({label}) used the session: {response.status_code}")
            elif not is_csrf_refusal(response):
                processed.append(f"{method.upper()} {path} ({label}): {response.status_code} {response.content[:80]}")
    assert processed == [], "\n".join(processed)


def test_with_the_token_the_same_requests_get_past_the_csrf_check(samples, staff_agent):
    """So the refusals above are the CSRF check's and not some other error's."""
    client = session_client(staff_agent.user)
    token = client.get("/agent/").cookies["csrftoken"].value
    refused = []
    for label, path, _pattern in endpoints(samples):
        if label in SESSIONLESS:
            continue
        client.force_login(staff_agent.user)  # the logout endpoint signs out
        response = client.post(path, HTTP_X_CSRFTOKEN=token)
        if is_csrf_refusal(response) or response.status_code >= 500:
            refused.append(f"POST {path} ({label}): {response.status_code}")
    assert refused == []


def test_a_refused_inbox_form_says_what_to_do(samples, staff_agent):
    client = session_client(staff_agent.user)
    response = client.post(f"/agent/conversations/{samples['pk']}/end/", HTTP_REFERER="http://testserver/agent/")
    assert response.status_code == 403
    html = response.content.decode()
    assert 'data-code="csrf_failed"' in html
    assert "Reload the page and try again." in html
    assert 'href="http://testserver/agent/"' in html


def test_a_refused_htmx_action_is_a_toast_with_the_code(samples, staff_agent):
    client = session_client(staff_agent.user)
    response = client.post(f"/agent/conversations/{samples['pk']}/end/", HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert response.content.decode().startswith('<div class="toast toast-error" role="alert" data-code="csrf_failed">')


def test_a_refused_session_api_call_is_json_with_the_code(samples, staff_agent):
    client = session_client(staff_agent.user)
    response = client.patch("/api/v1/agent/me/", {"presence": "away"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json() == {
        "code": "csrf_failed",
        "detail": "Your session has expired or the page is out of date. Reload the page and try again.",
    }


def test_token_authenticated_api_calls_need_no_csrf_token(samples, staff_agent):
    key = api_key(staff_agent.user)
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {key}")
    response = client.patch("/api/v1/agent/me/", {"presence": "away"}, content_type="application/json")
    assert response.status_code == 200
    response = client.post(f"/api/v1/agent/conversations/{samples['pk']}/wait/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "waiting"
    for label, path, _pattern in endpoints(samples):
        if label.startswith("api-agent"):
            assert not is_csrf_refusal(client.post(path)), label


def test_a_login_form_without_the_token_is_refused(db):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": "x"})
    assert response.status_code == 403
    assert b'data-code="csrf_failed"' in response.content
