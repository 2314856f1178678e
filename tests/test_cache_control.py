"""Responses that hold customer data are never stored by a browser or a proxy: every view's
response carries ``Cache-Control: no-store`` (omnichannel/caching.py). The endpoints come from
the URL conf itself, so a new URL cannot escape."""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

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
from tests.realtime.conftest import customer_token
from tests.urlconf import endpoints, samples, staff_agent, unthrottled  # noqa: F401 - fixtures


def no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_every_url_answers_with_no_store(samples, staff_agent):
    client = Client(raise_request_exception=False)
    client.force_login(staff_agent.user)
    checked, stored = 0, []
    for label, path, _pattern in endpoints(samples):
        response = client.post(path) if label == "logout" else client.get(path)
        checked += 1
        if not no_store(response):
            stored.append(f"{label} {path}: {response.status_code} {response.get('Cache-Control')!r}")
    assert checked > 30
    assert stored == []


def test_the_customer_data_answers_are_no_store(samples, staff_agent, customer, persistent):
    """The answers that carry messages and names, each with its real credentials and a 200."""
    conversation_id = int(samples["pk"])
    agent = Client()
    agent.force_login(staff_agent.user)
    for path in (
        "/agent/",
        f"/agent/conversations/{conversation_id}/",
        f"/agent/conversations/{conversation_id}/transcript.txt",
        f"/agent/conversations/{conversation_id}/history/",
        "/agent/supervisor/",
        f"/api/v1/agent/conversations/{conversation_id}/messages/",
        "/api/v1/agent/conversations/",
    ):
        response = agent.get(path, HTTP_HX_REQUEST="true" if path.endswith("/history/") else "")
        assert response.status_code == 200 and no_store(response), path

    widget = APIClient()
    widget.credentials(HTTP_AUTHORIZATION="Bearer " + customer_token(persistent.authentication_setting, "carol"))
    base = f"/api/v1/widget/{persistent.widget_key}/conversation/"
    sent = widget.post(base + "messages/", {"body": "My address is 1 Main St"}, format="json")
    assert sent.status_code == 201 and no_store(sent)
    current = widget.get(base)
    assert current.status_code == 200 and current.json()["conversation"] and no_store(current)
    page = widget.get(base + "messages/")
    assert page.status_code == 200 and "1 Main St" in page.content.decode() and no_store(page)


def test_a_view_that_chooses_its_own_caching_is_left_alone(rf):
    from django.http import HttpResponse

    from omnichannel.caching import NoStoreMiddleware

    def cached(request):
        response = HttpResponse("public")
        response["Cache-Control"] = "public, max-age=60"
        return response

    assert NoStoreMiddleware(cached)(rf.get("/"))["Cache-Control"] == "public, max-age=60"
    assert NoStoreMiddleware(lambda request: HttpResponse("x"))(rf.get("/"))["Cache-Control"] == "no-store"
