"""Running totals kept in the database: learning's counters (learning.counters) and the product's metrics
(automation.metrics) are added to with one statement per transaction, whatever the number of rows."""

from django.db import connection


def add_to_totals(model, key: tuple[str, ...], sums: tuple[str, ...], rows: list[tuple]) -> None:
    """Add `rows` (key values, then sums) to the model's running totals in one INSERT ... ON CONFLICT DO
    UPDATE (PostgreSQL and SQLite both speak it), so that two processes adding at once both count. `key`
    must be a unique constraint of the model."""
    # Sorted, so that two transactions adding to the same counters lock them in the same order.
    rows = sorted(rows)
    table = connection.ops.quote_name(model._meta.db_table)
    columns = [connection.ops.quote_name(c) for c in (*key, *sums)]
    one_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    added = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns[len(key) :])
    # Only quoted names of the model's own table and columns are formatted in; every value is a parameter.
    values = ", ".join([one_row] * len(rows))
    conflict = ", ".join(columns[: len(key)])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} ON CONFLICT ({conflict}) DO UPDATE SET {added}"  # noqa: E501, S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])
