"""SQLAlchemy Core statements compiled once into plain `sqlite3` SQL, with the schema's own
conversions.

The SQLite fast path (sqlite_reads, sqlite_writes) runs on the standard library's `sqlite3`,
but the SQL it runs is the statement written once in Core for every database: compiled here
at import, so a call costs a tuple of parameters, not a compilation. Values are converted as
SQLAlchemy converts them on SQLite, by the column types in schema.py (JSON as text, booleans
as 0/1 and back), not by a list of column names kept by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

DIALECT = sqlite.dialect()

Convert = Callable[[Any], Any]


def _converters(columns: Iterable[sa.ColumnElement[Any]], *, bind: bool) -> dict[str, Convert]:
    found: dict[str, Convert] = {}
    for column in columns:
        impl = column.type.dialect_impl(DIALECT)
        convert = impl.bind_processor(DIALECT) if bind else impl.result_processor(DIALECT, None)
        if convert is not None:
            found[str(column.key)] = convert
    return found


@dataclass(frozen=True)
class SqliteStatement:
    """One statement as `sqlite3` runs it: `?` placeholders filled from named values."""

    sql: str
    names: tuple[str, ...]                          # the value for each `?`, in order
    to_sql: tuple[Convert | None, ...]              # the schema's conversion for each `?`
    columns: tuple[str, ...]                        # result columns (interned), if any
    from_sql: tuple[tuple[str, Convert], ...]       # the schema's conversion per column
    defaults: Mapping[str, Any]                     # values written into the statement

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.defaults:
            values = {**self.defaults, **values}
        return tuple(values[n] if f is None else f(values[n])
                     for n, f in zip(self.names, self.to_sql, strict=True))

    def row(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """A result row as {column: value}, converted as SQLAlchemy would."""
        data = dict(zip(self.columns, row, strict=True))
        for name, convert in self.from_sql:
            data[name] = convert(data[name])
        return data


def compile_sqlite(stmt: sa.Executable, *, column_keys: list[str] | None = None,
                   table: sa.Table | None = None) -> SqliteStatement:
    """Compile `stmt` for `sqlite3`. Parameters are converted by the types of `table`'s
    columns of the same name (an INSERT's or UPDATE's values); result columns by their
    own types."""
    compiled = stmt.compile(dialect=DIALECT, column_keys=column_keys)
    names = tuple(compiled.positiontup or ())
    to_sql = _converters(table.c, bind=True) if table is not None else {}
    # a SELECT's columns, or an INSERT/UPDATE's RETURNING columns (empty without one)
    selected = list(getattr(stmt, "exported_columns", ()))
    from_sql = _converters(selected, bind=False)
    return SqliteStatement(
        sql=str(compiled),
        names=names,
        to_sql=tuple(to_sql.get(n) for n in names),
        # `Task(**row)` matches keyword names by identity first; interned names keep that fast
        columns=tuple(sys.intern(str(c.key or c.name)) for c in selected),
        from_sql=tuple(from_sql.items()),
        defaults={name: compiled.binds[name].value for name in names
                  if not compiled.binds[name].required},
    )
