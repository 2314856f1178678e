"""How the server talks to PostgreSQL: prepared statements on pooled connections
(omnichannel/settings.py, DATABASE_PREPARE_THRESHOLD)."""

from __future__ import annotations

import pytest
from django.db import connection

from conversations.models import Message

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_a_query_run_again_and_again_is_prepared_once_and_not_planned_again():
    """Planning was most of PostgreSQL's time for a request's small queries (the visibility
    check of a conversation: ~1 ms to plan, 0.1 ms to run)."""
    threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]
    for _ in range(threshold + 2):
        list(Message.objects.filter(conversation_id=1).order_by("-seq")[:51])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert [s for s in prepared if s.startswith('SELECT "conversations_message"')]
