"""DRF's API tokens become ApiTokens that keep only a digest of the key.

``rest_framework.authtoken`` stored each key in plain text (and the admin's history named a
token by its key). Here each key is hashed into an ApiToken of the same user, so every key
in use keeps working; then DRF's table is dropped, its migrations are forgotten (the app left
INSTALLED_APPS in the same commit; were it installed again, ``migrate`` would create its table
afresh), and the admin history's entries for DRF tokens lose the key they held (as the
object's id and its name).

A database created after the app left has no such table: nothing to do. Going back cannot bring
the plain keys back: the reverse does nothing, and tokens must then be issued again.
"""

import hashlib
from datetime import UTC, datetime

from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder
from django.utils.dateparse import parse_datetime

DRF_TABLE = "authtoken_token"
DRF_APP = "authtoken"


def _aware(value) -> datetime:
    if isinstance(value, str):  # a driver without a converter for the column
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def hash_drf_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if DRF_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("agents", "ApiToken")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('key')}, {quote('user_id')}, {quote('created')} FROM {quote(DRF_TABLE)}")
        rows = cursor.fetchall()
    ApiToken.objects.bulk_create(
        ApiToken(
            user_id=user_id,
            name="DRF token",
            prefix=key[:8],
            digest=hashlib.sha256(key.encode()).hexdigest(),
            created=_aware(created),
        )
        for key, user_id, created in rows
    )
    LogEntry = apps.get_model("admin", "LogEntry")
    # DRF's Token had its key for primary key and for str(): the history held it twice.
    LogEntry.objects.filter(content_type__app_label=DRF_APP).update(object_id=None, object_repr="DRF token")
    schema_editor.execute(f"DROP TABLE {quote(DRF_TABLE)}")
    MigrationRecorder(connection).migration_qs.filter(app=DRF_APP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_apitoken"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop, elidable=False)]
