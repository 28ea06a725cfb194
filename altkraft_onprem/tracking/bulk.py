"""The batch statements of an event flush, each run the fast way for its database.

SQLAlchemy's executemany spends several µs of Python per row on parameters (more for
INSERT … RETURNING, which it renders as multi-row VALUES), and a flush writes several rows per
event (the event, people and periods first seen): on Postgres that was most of the flush,
~160 µs of CPU per event, fewer events written per second than the event loop answers. There,
events go in with COPY and the roll-up keys as one array per column (`unnest`, `= ANY`).
SQLite keeps executemany (its driver loops in C) and IN lists of CHUNK ids.
"""
from __future__ import annotations

from sqlalchemy import Connection, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

CHUNK = 400


def upsert(conn: Connection, table):
    """The dialect's INSERT, which has on_conflict_do_nothing / on_conflict_do_update."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def insert_rows(conn: Connection, table, rows: list[dict]) -> None:
    """Appends rows (all with the same keys)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    cursor = conn.connection.dbapi_connection.cursor()     # the same transaction
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] for name in columns])


def insert_new(conn: Connection, table, columns: list[str], rows: list[tuple]) -> list[tuple]:
    """Inserts the rows whose key `table` does not have yet; returns those it inserted."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(:c{i} AS {table.c[name].type.compile(conn.dialect)}[])"
                           for i, name in enumerate(columns))
        names = ", ".join(columns)
        statement = text(f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) "
                         f"ON CONFLICT DO NOTHING RETURNING {names}")
        return [tuple(r) for r in conn.execute(statement, {f"c{i}": [row[i] for row in rows]
                                                           for i in range(len(columns))})]
    statement = upsert(conn, table).on_conflict_do_nothing().returning(*(table.c[n] for n in columns))
    return [tuple(r) for r in conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])]


def rows_with(conn: Connection, query, column, values) -> list:
    """The rows of `query` whose `column` is one of `values`."""
    values = sorted(values)
    if not values:
        return []
    if conn.dialect.name == "postgresql":
        return conn.execute(query.where(column == any_(bindparam(None, values, type_=ARRAY(column.type))))).all()
    found = []
    for start in range(0, len(values), CHUNK):
        found.extend(conn.execute(query.where(column.in_(values[start:start + CHUNK]))).all())
    return found
