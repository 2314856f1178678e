"""Schemathesis over the whole API with valid credentials: no server error and no response
that breaks the OpenAPI schema, for generated (and mutated) requests. Bounded for CI."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks

from conversations import services
from conversations.customer_tokens import issue_visitor_token
from tests.factories import api_key
from tests.realtime.conftest import customer_token

# What the issue asks: no server error, and every response as the schema says (status code,
# content type, headers, body). Authentication refusals have tests of their own.
CHECKS = [
    not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
# The inbound-mail endpoint takes a raw message (message/rfc822): sent as the binary it is.
schemathesis.serializer.alias("message/rfc822", "application/octet-stream")

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Schemathesis calls the WSGI app directly; like Django's test client, keep the request
    signals from closing the test's database connection (CONN_MAX_AGE=0 on PostgreSQL)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(persistent, live, customer, alice, superuser):
    """A conversation of the persistent widget's customer, assigned to alice; credentials of
    every kind of caller of the API."""
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    conversation.refresh_from_db()
    if conversation.agent_id is None:
        services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    return {
        "conversation_id": conversation.pk,
        # widget paths: (widget key, credential)
        "customer": (
            persistent.widget_key,
            "Bearer " + customer_token(persistent.authentication_setting, customer.external_id),
        ),
        "visitor": (live.widget_key, "Bearer " + issue_visitor_token(live)),
        # agent paths: credential
        "agent": "Token " + api_key(alice.user),
        "staff": "Token " + api_key(superuser),
    }


# Who calls: the customer (JWT, persistent widget) or a visitor (live widget) on widget paths; an
# agent or a staff supervisor without an agent profile on agent paths.
CALLERS = [("customer", "agent"), ("visitor", "staff")]


def authorize(case, world, callers, *, fill_ids: bool) -> dict:
    widget_caller, agent_caller = callers
    if case.path.startswith("/api/v1/widget/"):
        widget_key, credential = world[widget_caller]
        if fill_ids and "widget_key" in (case.path_parameters or {}):
            case.path_parameters["widget_key"] = widget_key
    else:
        credential = world[agent_caller]
    if fill_ids and "conversation_id" in (case.path_parameters or {}):
        case.path_parameters["conversation_id"] = world["conversation_id"]
    cache.clear()  # throttles would otherwise answer 429 to most generated calls
    return {"Authorization": credential}


@pytest.mark.parametrize("callers", CALLERS, ids=["customer-and-agent", "visitor-and-staff"])
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_no_schema_violation(case, world, callers):
    case.call_and_validate(headers=authorize(case, world, callers, fill_ids=True), checks=CHECKS)


@pytest.mark.parametrize("callers", CALLERS, ids=["customer-and-agent", "visitor-and-staff"])
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_keys_and_ids_get_a_documented_answer_too(case, world, callers):
    """Unknown widget keys, ids out of any range, keys that are not slugs: a documented error
    (JSON, in the schema), never a server error or Django's HTML page."""
    case.call_and_validate(headers=authorize(case, world, callers, fill_ids=False), checks=CHECKS)
