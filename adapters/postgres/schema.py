"""The read-model tables in PostgreSQL: `projections.schema.DDL` with column types.

SQLite keeps whatever a column is given; PostgreSQL needs a type per column. Untyped columns
are text unless named below; text compares and sorts by bytes (`COLLATE "C"`), as SQLite's
BINARY collation does, so ordered answers are the same on both.
"""

from __future__ import annotations

import re

from projections.schema import DDL

TEXT = 'TEXT COLLATE "C"'
INTEGERS = frozenset({
    "attempt", "cancel_requested", "timeout_seconds", "dispatched_seq", "duration_ms",
    "rejected", "version", "last_seq", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "steps", "retries", "concurrency_limit", "seq", "ms", "calls",
    "event_version", "generation", "count",
})  # fmt: skip
REALS = frozenset({"cost_usd"})
BYTES = frozenset({"document"})  # a stored event as it is in the log
# Columns whose name is an integer elsewhere but which hold text here (a software version).
TEXT_IN = {"extensions": {"version"}, "services": {"version"}, "brains": {"version"}}
TYPES = {"INTEGER": "BIGINT", "BLOB": "BYTEA", "TEXT": TEXT, "REAL": "DOUBLE PRECISION"}

_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+) \((.*), PRIMARY KEY \(([^)]*)\)\)$")

# SQLite's `total()` (a float sum, 0.0 over no rows) and `round(real, digits)`, which the
# queries use; created in every schema of ours, so the SQL needs no rewriting for them.
COMPAT = (
    "CREATE FUNCTION {schema}.round(double precision, integer) RETURNS double precision "
    "LANGUAGE sql IMMUTABLE STRICT AS "
    "'SELECT pg_catalog.round($1::numeric, $2)::double precision'",
    "CREATE AGGREGATE {schema}.total(double precision) "
    "(SFUNC = float8pl, STYPE = double precision, INITCOND = '0')",
)


def column(table: str, spec: str) -> str:
    """One column definition of ours with its PostgreSQL type."""
    name, *rest = spec.split()
    if rest:
        kind, *tail = rest
        return " ".join([name, TYPES.get(kind.upper(), kind), *tail])
    if name in TEXT_IN.get(table, ()):
        return f"{name} {TEXT}"
    if name in INTEGERS:
        return f"{name} BIGINT"
    if name in REALS:
        return f"{name} DOUBLE PRECISION"
    if name in BYTES:
        return f"{name} BYTEA"
    return f"{name} {TEXT}"


def to_postgres(statement: str) -> str:
    """A `CREATE TABLE` of ours with types; other statements (indexes) as they are."""
    match = _TABLE.match(statement)
    if match is None:
        return statement
    table, columns, key = match.groups()
    typed = ", ".join(column(table, c.strip()) for c in columns.split(","))
    return f"CREATE TABLE IF NOT EXISTS {table} ({typed}, PRIMARY KEY ({key}))"


PG_DDL: tuple[str, ...] = tuple(to_postgres(s) for s in DDL)
