"""Fuzzing the REST API with hypothesis: every widget and agent endpoint of the URL conf
(generated, so a new one is fuzzed too), each method, generated JSON bodies (or text that is
not JSON), query strings and credentials. Never a 500; every 4xx is JSON ``{"code", "detail"}``
with a code of docs/protocol.md. Bounded for CI."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.customer_tokens import issue_visitor_token
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
from tests.realtime.conftest import customer_token
from tests.realtime.test_fuzz_frames import SOCKET_CODES, json_values
from tests.urlconf import endpoints, samples, staff_agent, unthrottled  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

# The socket's codes, plus those only HTTP has.
REST_CODES = SOCKET_CODES | {
    "csrf_failed",
    "method_not_allowed",
    "unsupported_media_type",
    "not_acceptable",
    "request_too_large",
}
BODY_FIELDS = ["client_id", "body", "presence", "agent_id", "queue_id", "notes", "token"]
QUERY_FIELDS = ["after_seq", "before_seq", "limit", "status"]
ALL_METHODS = ["get", "post", "patch", "put", "delete"]


def api_calls(samples) -> list[tuple[str, str, list[str]]]:
    """(label, path, the methods its view answers) for every API endpoint of the URL conf."""
    calls = []
    for label, path, pattern in endpoints(samples):
        if label.startswith("api-") and label not in ("api-schema", "api-docs"):
            view = getattr(pattern.callback, "cls", None)
            calls.append((label, path, [m for m in ("get", "post", "patch") if hasattr(view, m)] or ["get"]))
    return calls


@st.composite
def bodies(draw):
    shaped = st.dictionaries(st.sampled_from(BODY_FIELDS), json_values, max_size=4)
    value = draw(st.one_of(shaped, shaped, json_values))
    choice = draw(st.sampled_from(["json-ascii", "json-ascii", "json", "text", "nested", "empty"]))
    if choice == "text":
        return draw(st.text(max_size=100) | st.sampled_from(["{", "NaN", "null", "[1,]", '{"a":1}x']))
    if choice == "nested":
        depth = draw(st.integers(1, 20_000))
        return "[" * depth + "]" * depth
    if choice == "empty":
        return ""
    return json.dumps(value, ensure_ascii=choice == "json-ascii")


query_values = st.one_of(
    st.text(max_size=20), st.integers().map(str), st.sampled_from(["²", "1e3", "-0", "9" * 30, "active,,closed"])
)
queries = st.dictionaries(st.sampled_from(QUERY_FIELDS) | st.text(max_size=5), query_values, max_size=3).map(urlencode)


@pytest.fixture
def credentials(samples, staff_agent, persistent, live, customer, outsider_agent):
    """For widget paths (the live widget of ``samples``): a visitor token, a JWT of another
    widget's site, garbage, none. For agent paths: the staff agent's, another agent's, garbage,
    none."""
    return {
        "widget": [
            f"Bearer {issue_visitor_token(live)}",
            f"Bearer {customer_token(persistent.authentication_setting)}",
            "Bearer garbage",
            None,
        ],
        "agent": [
            f"Token {api_key(staff_agent.user)}",
            f"Token {api_key(outsider_agent.user)}",
            "Token garbage",
            None,
        ],
    }


@pytest.fixture
def outsider_agent(db):
    from tests.factories import AgentFactory

    return AgentFactory(user__username="mallory")


def assert_a_documented_answer(response, what: str) -> None:
    assert response.status_code < 500, what
    if response.status_code >= 400:
        body = response.json()
        assert body["code"] in REST_CODES and isinstance(body["detail"], str), (what, body)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzzed_bodies_queries_and_credentials_never_get_a_500_and_every_error_has_a_code(samples, credentials, data):
    label, path, methods = data.draw(st.sampled_from(api_calls(samples)), label="endpoint")
    # Mostly what the view answers, with its valid credential: past the 405s and 401s, into the
    # code that reads the body and the query.
    method = data.draw(
        st.sampled_from(methods) | st.sampled_from(methods) | st.sampled_from(ALL_METHODS), label="method"
    )
    side = "widget" if label.startswith("api-widget") else "agent"
    valid, *others = credentials[side]
    credential = data.draw(st.just(valid) | st.just(valid) | st.sampled_from(others), label="credential")
    query = data.draw(queries, label="query")
    body = data.draw(bodies(), label="body")
    headers = {"HTTP_AUTHORIZATION": credential} if credential else {}
    client = Client(raise_request_exception=False)
    url = f"{path}?{query}" if query else path
    if method == "get":
        response = client.get(url, **headers)
    else:
        # A raw lone surrogate (ensure_ascii=False) goes as the bytes a client could send: not UTF-8.
        raw = body.encode("utf-8", "surrogatepass")
        response = getattr(client, method)(url, raw, content_type="application/json", **headers)
    assert_a_documented_answer(response, f"{method.upper()} {url} {body[:80]!r}")


@pytest.mark.parametrize(
    "body",
    [
        '{"client_id": "x", "body": "\\ud800"}',
        '{"presence": "\\udfff"}',
        '{"\\ud800": 1}',
        "[" * 5000 + "]" * 5000,
        '{"a": ' * 3000 + "1" + "}" * 3000,
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("post", "/api/v1/widget/{key}/conversation/messages/"), ("patch", "/api/v1/agent/me/")]
)
def test_lone_surrogates_and_deep_nesting_are_bad_frame_not_a_500(samples, credentials, method, path, body):
    """Were 500s: a ChoiceField echoed "\\udfff" into an error the renderer could not encode, and
    the JSON parser's RecursionError went uncaught."""
    credential = credentials["widget"][0] if "widget" in path else credentials["agent"][0]
    client = Client(raise_request_exception=False)
    url = path.format(key=samples["widget_key"])
    response = getattr(client, method)(url, body, content_type="application/json", HTTP_AUTHORIZATION=credential)
    assert (response.status_code, response.json()["code"]) == (400, "bad_frame")


def test_a_body_over_the_servers_limit_is_413_request_too_large_in_json_never_an_html_page(samples, credentials):
    """Issue #19: Django's RequestDataTooBig (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB)
    went past DRF's exception handler and answered Django's 400 page in HTML. Every API endpoint
    that takes a body, each with its valid credential."""
    from django.conf import settings as django_settings

    too_big = json.dumps({"body": "x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "notes": "", "agent_id": 1})
    client = Client(raise_request_exception=False)
    refused = set()
    for label, path, methods in api_calls(samples):
        credential = credentials["widget" if label.startswith("api-widget") else "agent"][0]
        for method in ("post", "patch", "put"):
            response = getattr(client, method)(
                path, too_big, content_type="application/json", HTTP_AUTHORIZATION=credential
            )
            what = f"{method.upper()} {path}"
            assert response["Content-Type"] == "application/json", what
            assert_a_documented_answer(response, what)
            if response.status_code == 413:
                assert response.json()["code"] == "request_too_large", what
                refused.add(f"{method} {label}")
    assert refused >= {
        "post api-widget-messages",
        "patch api-agent-me",
        "post api-agent-messages",
        "post api-agent-close",
        "post api-agent-transfer",
    }


def test_a_query_with_more_fields_than_the_server_reads_is_bad_frame_in_json(samples, credentials):
    """Django's TooManyFieldsSent (over DATA_UPLOAD_MAX_NUMBER_FIELDS, 1,000) was its HTML page too."""
    query = "&".join(f"f{n}=1" for n in range(1001))
    client = Client(raise_request_exception=False)
    for label, path, methods in api_calls(samples):
        if "get" not in methods or label == "api-not-found":
            continue
        credential = credentials["widget" if label.startswith("api-widget") else "agent"][0]
        response = client.get(f"{path}?{query}", HTTP_AUTHORIZATION=credential)
        assert (response.status_code, response.json()["code"]) == (400, "bad_frame"), label


WRONG_TYPES = ["5", "-0.5", "true", "false", "[]", '["Hi"]', '{"text": "Hi"}', "1e400", "-1e400"]
MESSAGE_PATHS = ["/api/v1/widget/{key}/conversation/messages/", "/api/v1/agent/conversations/{pk}/messages/"]


@pytest.mark.parametrize("value", WRONG_TYPES)
@pytest.mark.parametrize("field", ["body", "client_id"])
@pytest.mark.parametrize("path", MESSAGE_PATHS)
def test_a_body_or_client_id_that_is_no_string_is_bad_frame_as_on_the_socket(samples, credentials, path, field, value):
    """Issue #19: REST stored ``"body": 5`` as "5" and ``1e400`` as "inf" where the socket says
    ``bad_frame`` ('"body" has the wrong type.'); true, lists and objects were
    validation_error. Now the socket's answer, and nothing is stored."""
    from conversations.models import Message

    frame = {"body": '"Hi"', "client_id": '"c-1"', field: value}
    raw = "{" + ", ".join(f'"{name}": {text}' for name, text in frame.items()) + "}"
    credential = credentials["widget" if "widget" in path else "agent"][0]
    client = Client(raise_request_exception=False)
    before = Message.objects.count()
    url = path.format(key=samples["widget_key"], pk=samples["pk"])
    response = client.post(url, raw, content_type="application/json", HTTP_AUTHORIZATION=credential)
    assert (response.status_code, response.json()["code"]) == (400, "bad_frame")
    if "e400" not in value:  # those never reach the field: the parser refuses them
        assert response.json()["detail"] == f'"{field}" has the wrong type.'
    assert Message.objects.count() == before


@pytest.mark.parametrize("body", ['{"presence": 1e400}', '{"presence": "away", "x": [-1e999]}', '{"presence": NaN}'])
def test_a_number_beyond_a_float_anywhere_in_a_json_body_is_bad_frame(credentials, body):
    """Python's decoder reads 1e400 as infinity (NaN and Infinity were already refused)."""
    client = Client(raise_request_exception=False)
    response = client.patch(
        "/api/v1/agent/me/", body, content_type="application/json", HTTP_AUTHORIZATION=credentials["agent"][0]
    )
    assert (response.status_code, response.json()["code"]) == (400, "bad_frame")


def test_a_string_body_and_client_id_still_go_through(samples, credentials):
    client = Client(raise_request_exception=False)
    url = f"/api/v1/agent/conversations/{samples['pk']}/messages/"
    for client_id in ("c-1", None):
        body = {"body": "1e400", "client_id": client_id, "number": 1.5}
        response = client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=credentials["agent"][0])
        assert response.status_code == 201 and response.json()["body"] == "1e400"
