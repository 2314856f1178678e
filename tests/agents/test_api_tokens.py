"""API tokens (agents.ApiToken): the database keeps a digest of each key, never the key; a key
is shown once (the admin's answer to adding it, ``manage.py agent_token``); revoking is
deleting, and every way of deleting tells listeners (``post_delete``); DRF's plain-text tokens
were hashed by a migration, so their keys keep working."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import post_delete
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import SHOWN_PREFIX, ApiToken, key_digest
from omnichannel.api_auth import token_with_user
from tests.factories import UserFactory, api_key

ME = "/api/v1/agent/me/"


def texts_holding(value: str) -> list[str]:
    """Every ``table.column`` of the database with a text value containing ``value``."""
    found = []
    text_types = ("char", "text", "varchar", "clob")
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                kind = connection.introspection.get_field_type(column.type_code, column)
                if kind not in ("CharField", "TextField") and not any(t in str(column.type_code) for t in text_types):
                    continue
                name, quoted = column.name, connection.ops.quote_name(table)
                cursor.execute(
                    f"SELECT 1 FROM {quoted} WHERE {connection.ops.quote_name(name)} LIKE %s",
                    [f"%{value}%"],
                )
                if cursor.fetchone():
                    found.append(f"{table}.{name}")
    return found


def me(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(ME)


@pytest.mark.django_db
def test_the_database_holds_no_api_key_in_plain_text(alice):
    """Issue #19: DRF's authtoken kept every key as the primary key of its table. The command an
    administrator runs prints a key that no column of any table holds."""
    out = io.StringIO()
    call_command("agent_token", alice.user.username, stdout=out)
    key = out.getvalue().strip()
    assert me(key).status_code == 200
    assert texts_holding(key) == []
    assert texts_holding(key[SHOWN_PREFIX:]) == []


@pytest.mark.django_db
def test_a_key_is_found_by_its_digest_with_its_user_in_one_query(alice, django_assert_num_queries):
    token, key = ApiToken.objects.issue(user=alice.user, name="CRM")
    assert (token.prefix, token.digest) == (key[:SHOWN_PREFIX], key_digest(key))
    assert key.startswith("omni_") and len(key) == 48 and str(token) == key[:SHOWN_PREFIX] + "…"
    with django_assert_num_queries(1):
        found = token_with_user(key)
        assert (found.pk, found.user.username) == (token.pk, "alice")


@pytest.mark.django_db
def test_a_user_may_hold_several_keys_and_each_one_works(alice):
    keys = [api_key(alice.user) for _ in range(3)]
    assert len(set(keys)) == 3
    assert [me(key).status_code for key in keys] == [200, 200, 200]


@pytest.mark.django_db
def test_a_revoked_token_stops_working_and_every_way_of_deleting_sends_post_delete(alice):
    deleted = []

    def listen(sender, instance, **kwargs):
        deleted.append((instance.pk, instance.user_id))

    post_delete.connect(listen, sender=ApiToken, weak=False)
    try:
        first, first_key = ApiToken.objects.issue(user=alice.user)
        second, _ = ApiToken.objects.issue(user=alice.user)
        bob = UserFactory(username="bob-integration")
        third, _ = ApiToken.objects.issue(user=bob)
        expected = [(first.pk, alice.user.pk), (second.pk, alice.user.pk), (third.pk, bob.pk)]
        first.delete()
        assert me(first_key).json()["code"] == "invalid_token"
        ApiToken.objects.filter(pk=second.pk).delete()
        bob.delete()
    finally:
        post_delete.disconnect(listen, sender=ApiToken)
    assert deleted == expected  # the listener sees the pk (the instance loses it after the delete)


@pytest.mark.django_db
def test_adding_a_token_in_the_admin_shows_its_key_once_and_nowhere_else(superuser, alice):
    client = Client()
    client.force_login(superuser)
    response = client.post(reverse("admin:agents_apitoken_add"), {"user": alice.user.pk, "name": "CRM"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    html = response.content.decode()
    key = re.search(r'<textarea[^>]*id="api-key"[^>]*>(omni_[\w-]+)</textarea>', html).group(1)
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.digest) == (alice.user, "CRM", key_digest(key))
    assert 'data-copy="api-key"' in html and "admin.js" in html
    assert re.search(r"<[a-z][^>]*\son[a-z]+\s*=", html) is None  # no inline handler: the policy refuses them
    assert me(key).status_code == 200

    pages = [
        reverse("admin:agents_apitoken_changelist"),
        reverse("admin:agents_apitoken_change", args=[token.pk]),
        reverse("admin:agents_apitoken_history", args=[token.pk]),
        reverse("admin:index"),
    ]
    for page in pages:
        shown = client.get(page).content.decode()
        assert key not in shown and key[SHOWN_PREFIX:] not in shown, page
    assert token.prefix in client.get(pages[0]).content.decode()
    assert texts_holding(key[SHOWN_PREFIX:]) == []  # no message, session or history entry holds it
    assert [(entry.object_repr, entry.action_flag) for entry in LogEntry.objects.all()] == [(str(token), 1)]


@pytest.mark.django_db
def test_revoking_in_the_admin_is_deleting(superuser, alice):
    token, key = ApiToken.objects.issue(user=alice.user)
    client = Client()
    client.force_login(superuser)
    url = reverse("admin:agents_apitoken_changelist")
    response = client.post(url, {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"})
    assert response.status_code == 302 and not ApiToken.objects.exists()
    assert me(key).json()["code"] == "invalid_token"


@pytest.mark.django_db(transaction=True)
def test_drf_tokens_are_hashed_by_the_migration_so_their_keys_keep_working_and_the_plain_keys_go(alice):
    """The data migration, on a database that had rest_framework.authtoken: its table of keys,
    its migrations and the admin's history entry naming a token by its key."""
    key, created = "0123456789abcdef0123456789abcdef01234567", "2026-01-02 03:04:05"
    executor = MigrationExecutor(connection)
    executor.migrate([("agents", "0002_apitoken")])
    datetime_type = connection.data_types["DateTimeField"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created {datetime_type} NOT NULL, "
            "user_id integer NOT NULL UNIQUE)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [key, created, alice.user.pk])
    MigrationRecorder(connection).record_applied("authtoken", "0001_initial")
    token_type = ContentType.objects.create(app_label="authtoken", model="token")
    LogEntry.objects.create(
        user=alice.user, content_type=token_type, object_id=key, object_repr=key, action_flag=1, change_message=""
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # every app: later migrations depend on agents'

    token = token_with_user(key)
    assert (token.user.pk, token.prefix, token.name) == (alice.user.pk, key[:8], "DRF token")
    assert token.created.isoformat() == "2026-01-02T03:04:05+00:00"
    assert me(key).status_code == 200
    assert "authtoken_token" not in connection.introspection.table_names()
    assert not MigrationRecorder(connection).migration_qs.filter(app="authtoken").exists()
    assert texts_holding(key) == []
    assert list(LogEntry.objects.values_list("object_id", "object_repr")) == [(None, "DRF token")]
