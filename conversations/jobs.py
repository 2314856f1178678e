"""The Celery work the engine asks for: named, never imported, and sent after the commit.

The engine (conversations.services) asks for a task by its name through this module and never
imports ``conversations.tasks``, which imports the engine. A request waits for the commit
(``transaction.on_commit``), so no task reads a row that was rolled back or is not there yet.
A task that cannot be enqueued (the broker is down) is logged: the minute sweep does its work
anyway (conversations.tasks.sweep_task).

In eager mode (``task_always_eager``, the engine's tests and a live test server) the task runs
here and now, as ``apply_async`` of a task object would run it: this process's Celery app finds
the task by name, after importing the apps' ``tasks`` modules the way a worker does at start
(``import_default_modules``). Otherwise the task goes to the broker by name (``send_task``),
for a worker, which has imported them.
"""

from __future__ import annotations

import logging

from django.db import transaction

from omnichannel.celery import app

logger = logging.getLogger(__name__)

DRAIN_QUEUES = "conversations.tasks.drain_queues_task"
PRESENCE_REFRESH = "conversations.tasks.presence_refresh_task"
EMAIL_SEND = "conversations.tasks.email_send_task"


def drain_on_commit(queue_ids: list[int]) -> None:
    """After the commit, ask a worker to drain these queues."""
    transaction.on_commit(lambda: enqueue_drain(queue_ids))


def presence_refresh_on_commit(agent_id: int, *, countdown: float) -> None:
    """After the commit, ask a worker to let the agent's presence follow its capacity in
    ``countdown`` seconds."""
    transaction.on_commit(lambda: enqueue_presence_refresh(agent_id, countdown=countdown))


def email_send_on_commit(email_id: int) -> None:
    """After the commit, ask a worker to send this stored email; if the broker is down, the email
    sweep will."""
    transaction.on_commit(lambda: enqueue(EMAIL_SEND, email_id))


def enqueue_drain(queue_ids: list[int], countdown: float | None = None) -> None:
    """Ask a worker to drain these queues; if the broker is down, the minute sweep will."""
    enqueue(DRAIN_QUEUES, queue_ids, countdown=countdown)


def enqueue_presence_refresh(agent_id: int, countdown: float | None = None) -> None:
    """Ask a worker to let the agent's presence follow its capacity; if the broker is down,
    the minute sweep will."""
    enqueue(PRESENCE_REFRESH, agent_id, countdown=countdown)


def enqueue(task_name: str, *args: object, countdown: float | None = None) -> None:
    """Run the task named ``task_name`` with ``args``: on a worker (``countdown`` seconds from
    now), or here and now in eager mode. A failure to enqueue is logged, not raised."""
    try:
        if app.conf.task_always_eager:
            _registered(task_name).apply_async(args=args, countdown=countdown)
        else:
            app.send_task(task_name, args=args, countdown=countdown)
    except Exception:
        logger.warning("could not enqueue %s%r", task_name, args, exc_info=True)


def _registered(task_name: str):
    """The task registered under ``task_name`` in this process (``NotRegistered`` if none)."""
    task = app.tasks.get(task_name)
    if task is None:
        app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
        task = app.tasks[task_name]
    return task
