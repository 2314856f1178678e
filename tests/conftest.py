from __future__ import annotations

import pytest

from tests.factories import AgentFactory, UserFactory


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    # seed_demo writes its key pair and passwords here, never into the checkout's var/.
    settings.DEMO_DIR = tmp_path / "demo"
    # Password hashing is deliberately slow; tests do not need that.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own channel-layer instance: the layer keeps asyncio locks and pools
    bound to the event loop that first used them, and every async test (and every in-process
    server thread) runs its own loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def agent(db):
    return AgentFactory(user__username="alice", user__first_name="Alice")


@pytest.fixture
def other_agent(db):
    return AgentFactory(user__username="bob", user__first_name="Bob")


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (row locks; a database other processes see): set DATABASE_URL as CI does"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
