"""Statements compiled once and run as driver SQL: for the few statements on the hottest path.

`Connection.execute(statement, rows)` pays, on every call, a walk of the statement to find its
compiled form in the cache, then Python work for every parameter of every row. For the batch
of a heartbeat (one row per GPU, a dozen parameters each) that was most of the database time.
`Prepared` compiles the statement once per dialect and remembers which parameters have a
bind processor (a datetime on SQLite, a JSON object); `execute` converts only those and hands
the rows to the driver through `exec_driver_sql`, in the same transaction as everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult, Executable
from sqlalchemy.sql.compiler import Compiled


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # parameter names in order (positional paramstyles); else ()
    processors: dict[str, Callable[[Any], Any]]
    constants: dict[str, Any]  # the statement's own literals (`+ 1`, `else 0`), processed


class Prepared:
    """A Core statement without expanding parameters, compiled once per dialect."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        found = self._by_dialect.get(conn.dialect.name)
        if found is None:
            compiled: Compiled = self._statement.compile(dialect=conn.dialect)  # type: ignore[attr-defined]
            processors, constants = {}, {}
            for bind, name in compiled.bind_names.items():  # type: ignore[attr-defined]
                # The dialect's own type (PostgreSQL's JSON adapts through psycopg's wrapper).
                processor = bind.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
                if processor is not None:
                    processors[name] = processor
                if not bind.required:
                    constants[name] = processor(bind.value) if processor else bind.value
            names = tuple(compiled.positiontup or ()) if compiled.positional else ()  # type: ignore[attr-defined]
            found = _Compiled(compiled.string, names, processors, constants)
            self._by_dialect[conn.dialect.name] = found
        return found

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> CursorResult[Any]:
        """Run for each row (executemany); the result's rowcount is the rows changed in all."""
        compiled = self._compiled(conn)
        processors, constants = compiled.processors, compiled.constants
        converted = [
            {
                **constants,
                **{
                    name: (processors[name](value) if name in processors else value)
                    for name, value in row.items()
                },
            }
            for row in rows
        ]
        if compiled.names:
            params: Any = [tuple(row[name] for name in compiled.names) for row in converted]
        else:
            params = converted
        return conn.exec_driver_sql(compiled.sql, params)
