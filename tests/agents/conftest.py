"""The inbox's cast: the engine's (tests/cast.py) plus signed-in clients."""

from __future__ import annotations

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


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice.user)
    return client


@pytest.fixture
def supervisor(db):
    """Staff, without an agent profile of their own."""
    return UserFactory(username="sam", first_name="Sam", is_staff=True)


@pytest.fixture
def supervisor_client(client, supervisor):
    client.force_login(supervisor)
    return client
