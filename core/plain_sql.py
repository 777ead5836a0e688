"""Hot reads and writes as plain SQL through the cursor (the live cycle's, the outcome model's), each
statement's text built once per process. Built through the ORM, a query cost about 530 µs of a worker's CPU
against 77 µs for the same statement run raw (bench/bench_cycles.py's profile), and a cycle made some fifty;
the reads merged here were a dozen of them. Only the models' own table and column names are formatted in;
every value goes as a parameter. Here, below every app, so that learning's reads (learning/ml.py) use it too.

A value read is converted as the ORM converts it, by the backend's and the field's own converters (SQLite
hands decimals over as floats and times as text; PostgreSQL's JSON comes as text), so that a read gives what
the ORM's gave, to the digit, on PostgreSQL and SQLite alike."""

from collections.abc import Callable
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import ExpressionWrapper, Model, Value


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def null(model: type[Model], name: str) -> str:
    """A NULL of the column's type: PostgreSQL types the columns of a UNION from its first SELECT on, pair by
    pair, and an untyped NULL there becomes text that no later time or number matches."""
    return f"CAST(NULL AS {model._meta.get_field(name).db_type(connection)})"


def as_column(model: type[Model], name: str):
    """The expression a value of the column `name` is converted as."""
    return model._meta.get_field(name).get_col(model._meta.db_table)


def as_computed(model: type[Model], name: str):
    """The expression a value computed from the column `name` (an aggregate: SUM, COALESCE) is converted as:
    the ORM converts those otherwise than the column's own values (on SQLite, without rounding to its
    decimal places)."""
    return ExpressionWrapper(Value(None), output_field=model._meta.get_field(name))


def converter(expression) -> Callable[[Any], Any]:
    """The ORM's conversion of a value read for `expression` (django.db.models.sql.compiler's
    get_converters and apply_converters, for one column)."""
    steps = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
    if not steps:
        return _same
    db = connection

    def convert(value):
        for step in steps:
            value = step(value, expression, db)
        return value

    return convert


def _same(value):
    return value


def parameter(model: type[Model], name: str, value):
    """`value` as the ORM passes it for the column `name` in a lookup (a time as SQLite's text)."""
    return model._meta.get_field(name).get_db_prep_value(value, connection, prepared=False)


def statement(build: Callable[[], str]) -> Callable[[], str]:
    """`build()`'s SQL, built on first use in each process (per database vendor, for the tests' sake)."""
    built = cache(lambda vendor: build())
    return lambda: built(connection.vendor)


def rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def columns(model: type[Model]) -> str:
    """Every column of the model's rows, in the order `instances` reads them."""
    return ", ".join(
        f"{table(model)}.{connection.ops.quote_name(f.column)}" for f in model._meta.concrete_fields
    )


def instances(model: type[Model], sql: str, params: list) -> list:
    """The model's rows that `sql` (a SELECT of `columns(model)`) gives, as the ORM builds them."""
    return [instance(model, row) for row in rows(sql, params)]


def instance(model: type[Model], values) -> Model:
    """The model's row from the values of `columns(model)`, as the ORM builds it."""
    names, converters = _reading(model, connection.vendor)
    return model.from_db(
        connection.alias, names, [convert(value) for convert, value in zip(converters, values, strict=True)]
    )


@cache
def _reading(model: type[Model], vendor: str) -> tuple[list[str], list[Callable[[Any], Any]]]:
    # Once per model and process: the converters depend on the fields and the backend only.
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], [converter(f.get_col(model._meta.db_table)) for f in fields]


def update(model: type[Model], where: dict[str, Any], values: dict[str, Any]) -> int:
    """`model.objects.filter(**where).update(**values)` for equalities and plain values: the rows updated."""
    params = [_saved(model, name, value) for name, value in values.items()]
    params += [parameter(model, name, value) for name, value in where.items()]
    with connection.cursor() as cursor:
        cursor.execute(_update_statement(model, tuple(values), tuple(where), connection.vendor), params)
        return cursor.rowcount


def _saved(model: type[Model], name: str, value):
    """`value` as the ORM writes it into the column `name` (a dict as JSON, a time as SQLite's text)."""
    return model._meta.get_field(name).get_db_prep_save(value, connection)


@cache
def _update_statement(model: type[Model], names: tuple[str, ...], where: tuple[str, ...], vendor: str) -> str:
    assigned = ", ".join(f"{column(model, name)} = %s" for name in names)
    matched = " AND ".join(f"{column(model, name)} = %s" for name in where)
    return f"UPDATE {table(model)} SET {assigned} WHERE {matched}"  # noqa: S608


def insert(instance: Model) -> Model:
    """`instance.save()` of a new row, in plain SQL: each field's value as the ORM writes it (auto_now times
    set on the instance), its key set from the database's. No signal is sent; none is listened to for the
    rows the cycle writes so."""
    model, returning = type(instance), connection.features.can_return_columns_from_insert
    fields = [f for f in model._meta.local_concrete_fields if f is not model._meta.auto_field]
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(model, connection.vendor, returning), params)
        if returning:
            instance.pk = cursor.fetchone()[0]
        else:
            instance.pk = connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)
    instance._state.adding, instance._state.db = False, connection.alias
    return instance


@cache
def _insert_statement(model: type[Model], vendor: str, returning: bool) -> str:
    fields = [f for f in model._meta.local_concrete_fields if f is not model._meta.auto_field]
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table(model)} ({names}) VALUES ({values})"  # noqa: S608
    return f"{sql} RETURNING {connection.ops.quote_name(model._meta.pk.column)}" if returning else sql
