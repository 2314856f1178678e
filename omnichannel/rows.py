"""Model rows read with statements written out once, for the hottest reads (a message page, an
API token, the conversation a message goes into; why: docs/decisions.md, "Hot reads are written
out the same way"). What Django's query compiler would do on every call is done here once per
model (and database vendor), and rows become instances the way ``QuerySet.raw()`` makes them: the same
value conversions, ``from_db``, on Django's own connection (same transaction, same locks)."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from django.db import connection, models

# The largest id (or seq) a bigint column holds; the one definition. Larger ones match no row;
# SQLite's driver cannot even send them (OverflowError), so callers with values from a client
# check first.
MAX_ID = 2**63 - 1


class Columns(NamedTuple):
    """The model's columns, qualified by its table (``"t"."c", …``), their attribute names in
    that order, and the converters the compiler would apply: (index, functions, column)."""

    sql: str
    attnames: tuple[str, ...]
    converters: tuple


@lru_cache(maxsize=32)
def columns(vendor: str, model: type[models.Model]) -> Columns:
    """Every concrete column of ``model`` (``vendor`` keys the cache: converters and quoting
    differ between databases)."""
    table = model._meta.db_table
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            converters.append((index, tuple(functions), column))
    sql = ", ".join(f"{quote(table)}.{quote(field.column)}" for field in fields)
    return Columns(sql, tuple(field.attname for field in fields), tuple(converters))


def select(model: type[models.Model]) -> str:
    """``SELECT <every column> FROM <the model's table>``, for a statement's conditions to follow."""
    table = connection.ops.quote_name(model._meta.db_table)
    return f"SELECT {columns(connection.vendor, model).sql} FROM {table}"  # noqa: S608 - names from the model


def instance(model: type[models.Model], row, start: int = 0):
    """The ``model`` instance of ``row[start:]`` (selected with ``columns(…).sql``)."""
    return instances(model, [row], start)[0]


def instances(model: type[models.Model], rows, start: int = 0) -> list:
    """The ``model`` instances of ``rows`` (each from ``start``), in their order."""
    alias, vendor = connection.alias, connection.vendor  # the proxy costs a lookup per access
    attnames, converters = columns(vendor, model)[1:]
    end = start + len(attnames)
    from_db = model.from_db
    if not converters:
        return [from_db(alias, attnames, row[start:end]) for row in rows]
    made = []
    for row in rows:
        values = list(row[start:end])
        for index, functions, column in converters:
            value = values[index]
            for convert in functions:
                value = convert(value, column, connection)
            values[index] = value
        made.append(from_db(alias, attnames, values))
    return made
