"""The Celery side of the engine: the beat schedule and the tasks it runs."""

from __future__ import annotations

from conversations import tasks
from omnichannel.celery import app as celery_app


def test_beat_runs_the_sweeps_every_minute_emails_every_30_seconds_and_orphan_uploads_hourly(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule == {
        "conversations.tasks.sweep_task": 60.0,
        "conversations.tasks.average_wait_task": 60.0,
        "conversations.tasks.emails_task": 30.0,
        "conversations.tasks.attachments_sweep_task": 3600.0,
    }


def test_every_scheduled_or_enqueued_task_is_registered_with_the_app():
    celery_app.loader.import_default_modules()
    for task in (
        tasks.sweep_task,
        tasks.average_wait_task,
        tasks.drain_queues_task,
        tasks.presence_refresh_task,
        tasks.attachments_sweep_task,
    ):
        assert task.name in celery_app.tasks
        assert task.acks_late, task.name  # re-delivered when a worker dies mid-task: tasks are idempotent
