"""The cast most tests share (imported by name where it is used: ``from tests.cast import alice,
...``): a live and a persistent workstream, agents, customers,
and helpers that commit (run on-commit callbacks) and capture broadcasts."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from agents.models import Presence
from conversations import events
from omnichannel.celery import app as celery_app
from tests.factories import (
    AgentFactory,
    AuthenticationSettingFactory,
    ChatWidgetFactory,
    CustomerFactory,
    QueueFactory,
    WorkstreamFactory,
)


@pytest.fixture(autouse=True)
def eager_celery():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """``with commit(): ...`` runs what services deferred to the commit (broadcasts, Celery
    enqueues, which run eagerly) when the block ends, as a real commit would."""

    @contextmanager
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            yield

    return run


@pytest.fixture
def broadcasts(monkeypatch):
    """Every (group, frame) the engine publishes after commit."""
    sent: list[tuple[str, dict]] = []
    real = events.publish_now

    def capture(groups, frame):
        sent.extend((group, frame) for group in groups)
        real(groups, frame)

    monkeypatch.setattr(events, "publish_now", capture)
    return sent


@pytest.fixture
def queue(db):
    return QueueFactory(name="Support")


@pytest.fixture
def alice(queue):
    agent = AgentFactory(user__username="alice", user__first_name="Alice", presence=Presence.AVAILABLE, capacity=100)
    queue.agents.add(agent)
    return agent


@pytest.fixture
def bob(queue):
    agent = AgentFactory(user__username="bob", user__first_name="Bob", presence=Presence.AVAILABLE, capacity=100)
    queue.agents.add(agent)
    return agent


@pytest.fixture
def live(queue):
    """A live-chat widget: push, 50 units per conversation."""
    return ChatWidgetFactory(
        widget_key="live", workstream=WorkstreamFactory(name="Live", queue=queue, capacity_units=50)
    )


@pytest.fixture
def persistent(queue):
    setting = AuthenticationSettingFactory(name="Shop")
    return ChatWidgetFactory(
        widget_key="persistent",
        workstream=WorkstreamFactory(name="Persistent", queue=queue, capacity_units=50, persistent_mode=True),
        authentication_setting=setting,
    )


@pytest.fixture
def customer(persistent):
    return CustomerFactory(authentication_setting=persistent.authentication_setting, display_name="Carol")


@pytest.fixture
def visitor(live):
    return CustomerFactory(authentication_setting=None, widget=live, display_name="")


@pytest.fixture
def other_customer(persistent):
    return CustomerFactory(authentication_setting=persistent.authentication_setting, display_name="Dave")
