"""Core statements compiled once and run as a driver-level executemany.

SQLAlchemy's executemany converts every value of every row through the column types; for a
million rows that costs more than the database work. Here a statement is still built with
Core (so the SQL is the same on SQLite and Postgres) and compiled once; values that are the
same for the whole batch (timestamps, list id, source) are converted once, and only the
varying ones per row, with the same bind processors SQLAlchemy itself would use.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection


class Bulk:
    def __init__(self, conn: Connection, statement, keys: Iterable[str]):
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = str(compiled)
        self.positional = compiled.positional
        self.names: list[str] = list(compiled.positiontup) if self.positional else list(compiled.binds)
        self._processors = {}
        for name in self.names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor

    def convert(self, name: str, value):
        processor = self._processors.get(name)
        return processor(value) if processor is not None else value

    def run(self, conn: Connection, rows: Sequence[Mapping], constant: Mapping | None = None) -> None:
        """Executes the statement once per row; `constant` holds values shared by all rows."""
        if not rows:
            return
        fixed = {name: self.convert(name, value) for name, value in (constant or {}).items()}
        build = self._row_builder(fixed)
        conn.exec_driver_sql(self.sql, [build(row) for row in rows])

    def _row_builder(self, fixed: Mapping):
        """A function row -> driver parameters, generated once per batch: a per-row loop over
        the columns costs more than the insert itself."""
        namespace: dict = {}
        parts = []
        for i, name in enumerate(self.names):
            if name in fixed:
                namespace[f"c{i}"] = fixed[name]
                parts.append(f"c{i}")
            else:
                value = f"row[{name!r}]"
                if name in self._processors:
                    namespace[f"p{i}"] = self._processors[name]
                    value = f"p{i}({value})"
                parts.append(value)
        if self.positional:
            body = "(" + "".join(part + ", " for part in parts) + ")"
        else:
            body = "{" + ", ".join(f"{name!r}: {part}" for name, part in zip(self.names, parts, strict=True)) + "}"
        # Only column names and indexes go into the source; values stay in the namespace.
        return eval(f"lambda row: {body}", namespace)  # noqa: S307
