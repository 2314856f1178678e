"""Every statement of the engine written out by hand, and the helpers that run them.

The statements of a message are written out once here (from the models' metadata; why:
docs/decisions.md, "The four statements of a message are written out") and run on Django's own
connection: same transaction, same row locks, same
on_commit hooks, same conversions of values (raw() and get_db_prep_save), on either database.
A message from a socket into an active conversation is written on a connection of the server's
event loop instead, by one statement made from the same rule and fields
(``_loop_statement_sql``; conversations.services.messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from django.db import connection, models

from conversations.models import ONGOING, Conversation, Customer, Message, Sender
from omnichannel import rows
from workstreams.models import ChatWidget


def _lock_row(where: str, params: list) -> Conversation | None:
    """The first conversation row matching ``where`` (a constant condition written in the engine;
    values go in ``params``), locked (``FOR UPDATE``) where the database can lock rows."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"{rows.select(Conversation)} WHERE {where} ORDER BY id LIMIT 1{lock}", params)
        row = cursor.fetchone()
    return None if row is None else rows.instance(Conversation, row)


@lru_cache(maxsize=8)
def _insert_sql(vendor: str) -> tuple[str, tuple, bool]:
    """``INSERT INTO message (<every column but id>) … RETURNING id`` where the database can."""
    meta = Message._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    returning = connection.features.can_return_columns_from_insert
    sql = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(meta.pk.column)}"
    return sql, fields, returning


def _insert_values(message: Message) -> tuple[str, list, bool]:
    """The INSERT of ``message`` and its values, converted by Django (its own or a loop's
    connection sends them)."""
    sql, fields, returning = _insert_sql(connection.vendor)
    return sql, [field.get_db_prep_save(field.pre_save(message, True), connection) for field in fields], returning


def _inserted(message: Message, pk: int) -> None:
    message.pk = pk
    message._state.adding = False
    message._state.db = connection.alias


def _insert_message(message: Message) -> None:
    """``message.save(force_insert=True)`` without compiling the INSERT for every message
    (Message has no save() override and no save signals)."""
    sql, values, returning = _insert_values(message)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            pk = cursor.fetchone()[0]
        else:
            pk = connection.ops.last_insert_id(cursor, Message._meta.db_table, Message._meta.pk.column)
    _inserted(message, pk)


def _has_client_message(conversation_ids: list[int], sender: str, client_id: str) -> int | None:
    """The id of the message ``sender`` wrote with ``client_id`` in those conversations, if any
    (an index lookup on (conversation, sender, client_id))."""
    marks = ", ".join(["%s"] * len(conversation_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {connection.ops.quote_name(Message._meta.db_table)} "  # noqa: S608 - values bound
            f"WHERE conversation_id IN ({marks}) AND sender = %s AND client_id = %s LIMIT 1",
            [*conversation_ids, sender, client_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _update_values(objs: Sequence[models.Model], names: tuple[str, ...]) -> tuple[str, list[list]]:
    """The UPDATE of these fields and the values of each row, converted by Django."""
    sql, fields = _update_sql(connection.vendor, type(objs[0]), names)
    params = [
        [*(field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields), row.pk] for row in objs
    ]
    return sql, params


@lru_cache(maxsize=32)
def _update_sql(vendor: str, model: type[models.Model], names: tuple[str, ...]) -> tuple[str, tuple]:
    fields = tuple(model._meta.get_field(name) for name in names)
    sets = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    return f"UPDATE {table} SET {sets} WHERE {pk} = %s", fields  # noqa: S608 - column names from the model


def _save_fields(conversation: Conversation, *names: str) -> None:
    """Write these fields of a locked conversation (a message that changed nothing else)."""
    _save_fields_of([conversation], names)


def _save_fields_of(objs: Sequence[models.Model], names: tuple[str, ...]) -> None:
    """``save(update_fields=names)`` of these locked objects of one model (which has no save()
    override and no save signals): one UPDATE compiled once, sent for every row at once
    (on PostgreSQL psycopg's ``executemany`` pipelines them: one round trip, not one per row)."""
    if not objs:
        return
    sql, params = _update_values(objs, names)
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)


# What the event loop's statement sets for each field a message that only appends changes
# (``_APPENDED_FIELDS``); ``t`` is the conversation's row before, and a field missing here fails
# the statement's first use, so the two executors cannot drift apart.
_LOOP_SET = {
    "last_seq": "t.last_seq + 1",
    "customer_last_seq": "t.customer_last_seq + 1",
    "last_customer_message_at": "%(now)s",
    "last_agent_message_at": "%(now)s",
    "last_activity_at": "%(now)s",
    "agent_read_seq": "t.last_seq + 1",  # who answers has read what came before (``_appended``)
}
# The message it inserts, column by column (``c``: the updated conversation row; the author of a
# customer's message is ``Customer.name``: the name, else the email, else "Visitor <id>").
_LOOP_VALUES = {
    "conversation_id": "c.id",
    "seq": "c.last_seq",
    "customer_seq": "c.customer_last_seq",
    "sender": "%(sender)s",
    "agent_id": "%(agent)s",
    "author": "COALESCE(%(author)s, NULLIF(c.display_name, ''), NULLIF(c.email, ''),"
    " replace(%(visitor)s, '%%(id)s', left(c.external_id, 8)))",
    "kind": "''",
    "body": "%(body)s",
    "client_id": "%(client_id)s",
    "channel": "'chat'",  # a socket's message is a chat message (Channel.CHAT)
    "attachments": "NULL",  # a message with attachments takes the full path (conversations.realtime)
    "created_at": "%(now)s",
}


@lru_cache(maxsize=4)
def _loop_statement_sql(sender: str, when: tuple[tuple[str, object], ...], fields: tuple[str, ...]) -> str:
    """A message on the event loop's connection (PostgreSQL), in one statement: the full path's
    ``UPDATE`` of ``fields`` where the row holds what the rule requires (``when``, from
    ``messages.APPENDS_WHEN``: parameters ``when_<attname>``) and no message of this sender has
    the ``client_id``, and its ``INSERT`` of the message only if the ``UPDATE`` found the row.
    The row is locked while the statement runs; should the conversation change while it waits,
    PostgreSQL checks the conditions again on the new row. For a customer, the conversation is
    found as ``_ongoing`` finds it, and the widget must still belong to the workstream
    (``resolve``). Returns the message's id and author and the conversation's id, both seqs,
    customer, workstream and agent, or no row."""
    quote = connection.ops.quote_name
    conversations = quote(Conversation._meta.db_table)
    messages = quote(Message._meta.db_table)
    customers = quote(Customer._meta.db_table)
    widgets = quote(ChatWidget._meta.db_table)
    conditions = []
    for attname, required in when:
        column = quote(Conversation._meta.get_field(attname).column)
        conditions.append(f"t.{column} IS NULL" if required is None else f"t.{column} = %(when_{attname})s")
    sets = ", ".join(f"{quote(Conversation._meta.get_field(name).column)} = {_LOOP_SET[name]}" for name in fields)
    if sender == Sender.CUSTOMER:
        ongoing = ", ".join(f"'{status}'" for status in ONGOING)
        target = (
            f"t.id = (SELECT id FROM {conversations} WHERE customer_id = %(customer)s"  # noqa: S608 - names from the models
            f" AND workstream_id = %(workstream)s AND status IN ({ongoing}) ORDER BY id LIMIT 1)"
            f" AND EXISTS (SELECT 1 FROM {widgets} WHERE id = %(widget)s AND workstream_id = %(workstream)s)"
        )
    else:
        target = "t.id = %(conversation)s"
    inserted = [field for field in Message._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in inserted)
    values = ", ".join(_LOOP_VALUES[field.attname] for field in inserted)
    return f"""WITH c AS (
        UPDATE {conversations} AS t SET {sets}
        FROM {customers} AS cu
        WHERE cu.id = t.customer_id AND {target} AND {" AND ".join(conditions)}
            AND NOT EXISTS (
                SELECT 1 FROM {messages} AS m
                WHERE m.conversation_id = t.id AND m.sender = %(sender)s AND m.client_id = %(client_id)s
            )
        RETURNING t.id, t.last_seq, t.customer_last_seq, t.customer_id, t.workstream_id, t.agent_id,
            cu.display_name, cu.email, cu.external_id
    ), m AS (
        INSERT INTO {messages} ({columns}) SELECT {values} FROM c RETURNING id, author
    )
    SELECT m.id, m.author, c.id, c.last_seq, c.customer_last_seq, c.customer_id, c.workstream_id, c.agent_id
    FROM m, c"""  # noqa: S608 - names from the models
