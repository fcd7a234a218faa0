"""SQLAlchemy Core statements compiled once for a driver the fast paths call directly, with
the schema's own conversions.

The fast paths run on the standard library's `sqlite3` (sqlite_reads, sqlite_writes) and on
a plain `asyncpg` pool (pg_direct), but the SQL they run is the statement written once in
Core for every database, compiled here once per statement, so a call costs a tuple or a
mapping of parameters, not a compilation. Values are converted as SQLAlchemy converts them
for that dialect, by the column types in schema.py (on SQLite JSON as text and booleans as
0/1; on asyncpg JSON written as text and read by the connection's codec), not by a list of
column names kept by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

# JSON columns are read with orjson (several times faster than json on every status read),
# here, by the engines Database makes and by pg_direct's codec; written with SQLAlchemy's
# default, json.dumps.
JSON_DESERIALIZER = orjson.loads
# Named parameters: sqlite3 takes the values' mapping as it is, no tuple to build per call.
SQLITE = sqlite.dialect(paramstyle="named", json_deserializer=JSON_DESERIALIZER)
# asyncpg's own dialect: `$1` parameters (with SQLAlchemy's casts), JSON decoded by a codec.
POSTGRES = postgresql.asyncpg.dialect(json_deserializer=JSON_DESERIALIZER)

Convert = Callable[[Any], Any]


def _converters(columns: Iterable[sa.ColumnElement[Any]], dialect: Dialect, *, bind: bool,
                coltypes: Sequence[Any] | None = None) -> dict[str, Convert]:
    found: dict[str, Convert] = {}
    for i, column in enumerate(columns):
        impl = column.type.dialect_impl(dialect)
        if bind:
            convert = impl.bind_processor(dialect)
        else:
            convert = impl.result_processor(dialect, coltypes[i] if coltypes else None)
        if convert is not None:
            found[str(column.key)] = convert
    return found


@dataclass(frozen=True)
class Compiled:
    """One statement as its driver runs it: `:name` placeholders for sqlite3 (`params`),
    `$n` for asyncpg (`args`, in `order`)."""

    sql: str
    names: frozenset[str]                        # the statement's parameters
    order: tuple[str, ...]                       # positional parameters' names, if positional
    to_db: tuple[tuple[str, Convert], ...]       # the schema's conversion per parameter
    columns: tuple[str, ...]                     # result columns (interned), if any
    from_db: tuple[tuple[str, Convert], ...]     # the schema's conversion per column
    defaults: Mapping[str, Any]                  # values written into the statement

    def params(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.defaults:
            values = {**self.defaults, **values}
        if self.to_db:
            values = dict(values)
            for name, convert in self.to_db:
                values[name] = convert(values[name])
        return values

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The parameters in `$1, $2, ...` order."""
        values = self.params(values)
        return tuple([values[name] for name in self.order])

    def row(self, row: Iterable[Any]) -> dict[str, Any]:
        """A result row as {column: value}, converted as SQLAlchemy would."""
        data = dict(zip(self.columns, row, strict=True))
        for name, convert in self.from_db:
            data[name] = convert(data[name])
        return data


def _compile(dialect: Dialect, stmt: sa.Executable, column_keys: list[str] | None = None
             ) -> SQLCompiler:
    compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
    if compiled.literal_execute_params:
        # values fixed in the statement (`literal_execute`, as leases.UNFINISHED's statuses)
        # go into its text now, once, where SQLAlchemy renders them at every execution
        compiled._process_parameters_for_postcompile(
            compiled.construct_params(_check=False), _populate_self=True)
    return compiled


def sql_of(dialect: Dialect, stmt: sa.Executable) -> str:
    """The text `compile_for` gives `stmt`."""
    return str(_compile(dialect, stmt))


def compile_for(dialect: Dialect, stmt: sa.Executable, *, column_keys: list[str] | None = None,
                table: sa.Table | None = None, coltypes: Sequence[Any] | None = None
                ) -> Compiled:
    """Compile `stmt` for `dialect`'s driver. Parameters are converted by the types of
    `table`'s columns of the same name (an INSERT's or UPDATE's values); result columns by
    their own types and, where the dialect asks (asyncpg's numbers), by the database's type
    of each result column, `coltypes` (as a cursor describes them)."""
    compiled = _compile(dialect, stmt, column_keys)
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    to_db = _converters(table.c, dialect, bind=True) if table is not None else {}
    # a SELECT's columns, or an INSERT/UPDATE's RETURNING columns (empty without one)
    selected = list(getattr(stmt, "exported_columns", ()))
    return Compiled(
        sql=str(compiled),
        names=frozenset(binds),
        order=tuple(compiled.positiontup or ()),
        to_db=tuple((n, f) for n, f in to_db.items() if n in binds),
        # `Task(**row)` matches keyword names by identity first; interned names keep that fast
        columns=tuple(sys.intern(str(c.key or c.name)) for c in selected),
        from_db=tuple(_converters(selected, dialect, bind=False, coltypes=coltypes).items()),
        defaults={n: b.value for n, b in binds.items() if not b.required},
    )


def compile_sqlite(stmt: sa.Executable, **kwargs: Any) -> Compiled:
    return compile_for(SQLITE, stmt, **kwargs)


def compile_pg(stmt: sa.Executable, **kwargs: Any) -> Compiled:
    return compile_for(POSTGRES, stmt, **kwargs)
