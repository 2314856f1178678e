from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from conversations import services
from conversations.models import Status
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


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def as_customer(persistent):
    """An API client for a customer of the persistent widget (``sub`` chooses who)."""

    def make(sub="carol", **claims):
        client = APIClient()
        client.credentials(
            HTTP_AUTHORIZATION="Bearer " + customer_token(persistent.authentication_setting, sub, **claims)
        )
        return client

    return make


@pytest.fixture
def conversation(persistent, customer, alice):
    """Carol's persistent conversation, active with Alice (modules may define their own)."""
    conversation = services.customer_message_send(widget=persistent, customer=customer, body="Hello").conversation
    conversation.refresh_from_db()
    if conversation.status == Status.OPEN:  # no commit in this test: no assignment ran
        services.conversation_assign(conversation_id=conversation.pk, agent=alice)
        conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, alice.pk)
    return conversation


@pytest.fixture
def as_agent():
    def make(agent):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token " + api_key(agent.user))
        return client

    return make
