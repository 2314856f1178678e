"""The tables behind the engine: the indexes its hot queries need, and the constraints that
hold when two writers race."""

from __future__ import annotations

import pytest
from django.db import connection

from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def index_columns(model) -> list[tuple[str, ...]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return [tuple(c["columns"]) for c in constraints.values() if c["index"] or c["unique"]]


def test_the_queries_of_the_engine_and_the_inbox_have_indexes():
    conversations = index_columns(Conversation)
    assert ("queue_id", "status", "queued_at") in conversations  # open conversations by queue and age
    assert ("agent_id", "status") in conversations  # an agent's conversations by status
    assert ("customer_id", "workstream_id", "created_at") in conversations  # a customer's latest
    messages = index_columns(Message)
    assert ("conversation_id", "seq") in messages  # history pages and after_seq


def test_seq_and_client_id_are_unique_per_conversation_in_the_database():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Message._meta.db_table)
    unique = [tuple(c["columns"]) for c in constraints.values() if c["unique"]]
    assert ("conversation_id", "seq") in unique
    assert ("conversation_id", "sender", "client_id") in unique
