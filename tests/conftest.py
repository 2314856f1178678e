from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

from tests.factories import AgentFactory, UserFactory

# Property and fuzz tests (hypothesis, schemathesis). "ci", the default: the same examples on
# every run (derandomized, no example database), so a failure reproduces from the commit alone
# and hypothesis prints the failing example. HYPOTHESIS_PROFILE=explore draws new examples on each
# run (pytest prints the seed; --hypothesis-seed=N replays it).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    # seed_demo writes its key pair and passwords here, never into the checkout's var/.
    settings.DEMO_DIR = tmp_path / "demo"
    # Uploaded attachments, likewise.
    settings.MEDIA_ROOT = tmp_path / "media"
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


@pytest.fixture(autouse=True)
def _close_loop_connections():
    """The one-statement message path keeps PostgreSQL connections per event loop
    (omnichannel.asyncdb); each test's loop ends with the test, and so do they."""
    from omnichannel import asyncdb

    yield
    asyncdb.close_all()


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

    if settings.OMNICHANNEL_STOCK_REALTIME:
        stock = pytest.mark.skip(
            reason="a part of the fast real-time stack: OMNICHANNEL_STOCK_REALTIME runs the stock one instead"
        )
        for item in items:
            if "fast_realtime" in item.keywords:
                item.add_marker(stock)
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (row locks; a database other processes see): set DATABASE_URL as CI does"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
