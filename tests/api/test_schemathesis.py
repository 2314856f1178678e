"""Schemathesis over the whole API with valid credentials: no server error and no response
that breaks the OpenAPI schema, for generated (and mutated) requests. Bounded for CI."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks

from conversations import services
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
def world(persistent, customer, alice):
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hi").conversation
    services.conversation_assign(conversation_id=conversation.pk, agent=alice)
    return {
        "widget_key": persistent.widget_key,
        "conversation_id": conversation.pk,
        "customer": "Bearer " + customer_token(persistent.authentication_setting, customer.external_id),
        "agent": "Token " + Token.objects.get_or_create(user=alice.user)[0].key,
    }


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_no_schema_violation(case, world):
    if "widget_key" in (case.path_parameters or {}):
        case.path_parameters["widget_key"] = world["widget_key"]
    if "conversation_id" in (case.path_parameters or {}):
        case.path_parameters["conversation_id"] = world["conversation_id"]
    credential = world["customer"] if case.path.startswith("/api/v1/widget/") else world["agent"]
    cache.clear()  # throttles would otherwise answer 429 to most generated calls
    case.call_and_validate(headers={"Authorization": credential}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_keys_and_ids_get_a_documented_answer_too(case, world):
    """Unknown widget keys, ids out of any range, keys that are not slugs: a documented error
    (JSON, in the schema), never a server error or Django's HTML page."""
    credential = world["customer"] if case.path.startswith("/api/v1/widget/") else world["agent"]
    cache.clear()
    case.call_and_validate(headers={"Authorization": credential}, checks=CHECKS)
