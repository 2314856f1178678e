"""Bad input to the web pages and the API never gives a 500: a clear error with a stable code
(docs/protocol.md), or the input is ignored where it only filters a page."""

from __future__ import annotations

import json

import pytest
from django.test import Client

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

HX = {"HTTP_HX_REQUEST": "true"}
# Unicode digits pass str.isdigit() but not int(); the rest overflow integers or columns.
NASTY = ["²", "-1", "99999999999999999999999", "\x00", "a" * 5000, "agent:²", "queue:99999999999999999999999", "%"]
FIELDS = ["seq", "target", "presence", "notes", "query", "current", "queue", "agent", "status", "part", "customer"]
NASTY_JSON = [
    {"body": ["x"], "client_id": {"a": 1}, "agent_id": "²", "queue_id": 99999999999999999999999, "presence": None},
    {"body": "x" * 5000, "client_id": "x" * 500, "agent_id": -1, "queue_id": "1", "presence": 5, "notes": ["n"]},
    [],
    "text",
]
QUERIES = ["", "?after_seq=²", "?before_seq=99999999999999999999999&limit=-5", "?limit=²", "?status=²,x"]


def test_no_form_or_filter_of_the_web_pages_answers_a_500(samples, staff_agent):
    client = Client(raise_request_exception=False)
    failures = []
    for label, path, _pattern in endpoints(samples):
        if label.startswith("admin:") or label.startswith("api") or label == "logout":
            continue
        for value in NASTY:
            for method in ("get", "post"):
                client.force_login(staff_agent.user)
                response = getattr(client, method)(path, dict.fromkeys(FIELDS, value))
                if response.status_code >= 500:
                    failures.append(f"{method.upper()} {path} {value[:12]!r}: {response.status_code}")
    assert failures == []


def test_no_api_call_answers_a_500_and_every_error_has_a_code(samples, staff_agent, persistent):
    key = api_key(staff_agent.user)
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {key}")
    failures = []
    for label, path, _pattern in endpoints(samples):
        if not label.startswith("api-") or label in ("api-schema", "api-docs"):
            continue
        for query in QUERIES:
            for body in NASTY_JSON:
                for method in ("get", "post", "patch"):
                    data = {} if method == "get" else {"data": json.dumps(body), "content_type": "application/json"}
                    response = getattr(client, method)(path + query, **data)
                    if response.status_code >= 500 or (response.status_code >= 400 and "code" not in response.json()):
                        failures.append(f"{method.upper()} {path}{query} {str(body)[:20]}: {response.status_code}")
    assert failures == []


def test_a_read_marker_that_is_not_a_number_is_a_validation_error(alice_client, samples):
    response = alice_client.post(f"/agent/conversations/{samples['pk']}/read/", {"seq": "²"})
    assert response.status_code == 400
    assert response.json() == {"code": "validation_error", "detail": "seq must be a non-negative integer"}


def test_a_read_marker_past_any_integer_marks_everything_read(alice_client, samples):
    response = alice_client.post(f"/agent/conversations/{samples['pk']}/read/", {"seq": "9" * 19})
    assert response.status_code == 204


def test_a_transfer_to_a_malformed_target_is_a_toast_with_the_code(alice_client, samples):
    for target in ("agent:²", "queue:99999999999999999999999", "agent:"):
        response = alice_client.post(f"/agent/conversations/{samples['pk']}/transfer/", {"target": target}, **HX)
        assert response.status_code in (400, 404), target
        assert 'data-code="' in response.content.decode()


@pytest.mark.parametrize("query", ["?queue=²", "?agent=99999999999999999999999", "?status=nonsense"])
def test_malformed_supervisor_filters_are_ignored(alice_client, samples, query):
    assert alice_client.get("/agent/supervisor/" + query).status_code == 200


@pytest.fixture
def alice_client(client, staff_agent):
    client.force_login(staff_agent.user)
    return client
