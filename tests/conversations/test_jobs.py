"""The engine asks for Celery work by task name (conversations.jobs), after the commit."""

from __future__ import annotations

import logging

import pytest

from conversations import jobs
from omnichannel.celery import app as celery_app


def test_every_task_the_engine_names_is_registered_with_the_app():
    celery_app.loader.import_default_modules()
    for name in (jobs.DRAIN_QUEUES, jobs.PRESENCE_REFRESH):
        assert name in celery_app.tasks


def test_a_task_goes_to_the_broker_by_name(monkeypatch):
    celery_app.conf.task_always_eager = False
    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, args, countdown: sent.append((name, args, countdown)))
    jobs.enqueue_presence_refresh(7, countdown=121.0)
    jobs.enqueue_drain([1, 2])
    assert sent == [(jobs.PRESENCE_REFRESH, (7,), 121.0), (jobs.DRAIN_QUEUES, ([1, 2],), None)]


def test_in_eager_mode_the_registered_task_runs_here(monkeypatch):
    celery_app.loader.import_default_modules()
    task = celery_app.tasks[jobs.DRAIN_QUEUES]
    ran = []
    monkeypatch.setattr(task, "run", lambda queue_ids=None: ran.append(queue_ids))
    monkeypatch.setattr(celery_app, "send_task", lambda *args, **kwargs: pytest.fail("sent to the broker"))
    jobs.enqueue_drain([3])
    assert ran == [[3]]


def test_a_task_that_cannot_be_enqueued_is_logged_not_raised(monkeypatch, caplog):
    celery_app.conf.task_always_eager = False

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    with caplog.at_level(logging.WARNING, logger="conversations.jobs"):
        jobs.enqueue_drain([1])
    assert "could not enqueue conversations.tasks.drain_queues_task" in caplog.text


@pytest.mark.django_db
def test_nothing_is_enqueued_before_the_commit(monkeypatch, django_capture_on_commit_callbacks):
    drains = []
    monkeypatch.setattr(jobs, "enqueue_drain", lambda ids, countdown=None: drains.append(ids))
    with django_capture_on_commit_callbacks(execute=True):
        jobs.drain_on_commit([4])
        assert drains == []
    assert drains == [[4]]
