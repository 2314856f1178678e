from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conversations.conftest import *  # noqa: F403 - the shared cast (widgets, agents, customers)
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
def as_agent():
    def make(agent):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token " + api_key(agent.user))
        return client

    return make
