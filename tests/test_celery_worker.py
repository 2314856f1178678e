"""One real round trip through the Redis broker and a Celery worker process (CI runs it on
PostgreSQL; the worker needs to see the test database, which SQLite's in-memory one isn't)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from agents.models import Presence
from conversations import services
from conversations.models import Conversation, Status
from conversations.tasks import drain_queues_task
from tests.factories import AgentFactory, ChatWidgetFactory, CustomerFactory, QueueFactory, WorkstreamFactory

BASE_DIR = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_assigns_queued_conversations_through_the_redis_broker(tmp_path):
    queue = QueueFactory()
    widget = ChatWidgetFactory(workstream=WorkstreamFactory(queue=queue, persistent_mode=True))
    customer = CustomerFactory(authentication_setting=widget.authentication_setting)
    conversation = services.customer_message_send(widget=widget, customer=customer, body="hi").conversation
    agent = AgentFactory(presence=Presence.OFFLINE)
    queue.agents.add(agent)
    agent.presence = Presence.AVAILABLE
    agent.save()
    assert Conversation.objects.get().status == Status.OPEN

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "OMNICHANNEL_VAR_DIR": str(tmp_path),
    }
    if db.get("PASSWORD"):
        env["DATABASE_URL"] = env["DATABASE_URL"].replace(f"{db['USER']}@", f"{db['USER']}:{db['PASSWORD']}@")
    queue_name = f"test-{os.getpid()}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "omnichannel",
            "worker",
            "--pool",
            "solo",
            "-Q",
            queue_name,
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        cwd=BASE_DIR,
    )
    try:
        drain_queues_task.apply_async(args=[[queue.pk]], queue=queue_name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conversation.refresh_from_db()
            if conversation.status == Status.ACTIVE:
                break
            time.sleep(0.2)
        assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, agent.pk)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
