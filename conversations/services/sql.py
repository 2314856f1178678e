"""Every statement of the engine written out by hand, and the helpers that run them.

The statements of a message are written out once here (from the models' metadata; why:
docs/decisions.md, "The four statements of a message are written out") and run on Django's own
connection: same transaction, same row locks, same
on_commit hooks, same conversions of values (raw() and get_db_prep_save), on either database.
A message from a socket into an active conversation sends the same INSERT and UPDATE, with the
same values, on a connection of the server's event loop instead (``_loop_lock_sql`` reads the row
first; conversations.services.messages).
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


@lru_cache(maxsize=2)
def _loop_lock_sql(sender: str) -> str:
    """For a message on the event loop's connection (PostgreSQL): the conversation it goes
    into, locked, as ``_lock_row`` reads it, then what ``resolve`` and the ``client_id`` check
    of the full path read, in the same round trip: for a customer, its row and its widget's
    workstream now; for either side, whether this ``client_id`` is stored in the conversation.
    Parameters by name: ``customer``, ``workstream``, ``widget`` (a customer's), ``conversation``
    (an agent's), ``sender``, ``client_id``."""
    quote = connection.ops.quote_name
    conversations = quote(Conversation._meta.db_table)
    messages = quote(Message._meta.db_table)
    conversation_columns = rows.columns(connection.vendor, Conversation).sql
    resent = (
        f"EXISTS (SELECT 1 FROM {messages} AS m WHERE m.conversation_id = {conversations}.id"  # noqa: S608 - names from the models
        " AND m.sender = %(sender)s AND m.client_id = %(client_id)s)"
    )
    if sender == Sender.AGENT:
        return (
            f"SELECT {conversation_columns}, {resent} FROM {conversations}"  # noqa: S608 - names from the models
            f" WHERE {conversations}.id = %(conversation)s FOR UPDATE"
        )
    customers = quote(Customer._meta.db_table)
    widgets = quote(ChatWidget._meta.db_table)
    customer_columns = rows.columns(connection.vendor, Customer).sql
    ongoing = ", ".join(f"'{status}'" for status in ONGOING)
    return (
        f"SELECT {conversation_columns}, {resent}, {customer_columns},"  # noqa: S608 - names from the models
        f" (SELECT workstream_id FROM {widgets} WHERE id = %(widget)s)"
        f" FROM {conversations} JOIN {customers} ON {customers}.id = {conversations}.customer_id"
        f" WHERE {conversations}.customer_id = %(customer)s AND {conversations}.workstream_id = %(workstream)s"
        f" AND {conversations}.status IN ({ongoing})"
        f" ORDER BY {conversations}.id LIMIT 1 FOR UPDATE OF {conversations}"
    )
