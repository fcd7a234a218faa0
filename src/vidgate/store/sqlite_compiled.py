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

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

# JSON columns are read with orjson (several times faster than json on every status read),
# here and by the engines Database makes; written with SQLAlchemy's default, json.dumps.
JSON_DESERIALIZER = orjson.loads
# Named parameters: sqlite3 takes the values' mapping as it is, no tuple to build per call.
DIALECT = sqlite.dialect(paramstyle="named", json_deserializer=JSON_DESERIALIZER)

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
    """One statement as `sqlite3` runs it, with `:name` placeholders."""

    sql: str
    names: frozenset[str]                        # the statement's parameters
    to_sql: tuple[tuple[str, Convert], ...]      # the schema's conversion per parameter
    columns: tuple[str, ...]                     # result columns (interned), if any
    from_sql: tuple[tuple[str, Convert], ...]    # the schema's conversion per column
    defaults: Mapping[str, Any]                  # values written into the statement

    def params(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.defaults:
            values = {**self.defaults, **values}
        if self.to_sql:
            values = dict(values)
            for name, convert in self.to_sql:
                values[name] = convert(values[name])
        return values

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
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    to_sql = _converters(table.c, bind=True) if table is not None else {}
    # a SELECT's columns, or an INSERT/UPDATE's RETURNING columns (empty without one)
    selected = list(getattr(stmt, "exported_columns", ()))
    return SqliteStatement(
        sql=str(compiled),
        names=frozenset(binds),
        to_sql=tuple((n, f) for n, f in to_sql.items() if n in binds),
        # `Task(**row)` matches keyword names by identity first; interned names keep that fast
        columns=tuple(sys.intern(str(c.key or c.name)) for c in selected),
        from_sql=tuple(_converters(selected, bind=False).items()),
        defaults={n: b.value for n, b in binds.items() if not b.required},
    )
