"""Our read-model SQL, written for SQLite, as PostgreSQL statements.

The folds and queries stay one body of code; the differences are few and mechanical:

- `?` placeholders become `%s` (and a literal `%` becomes `%%`), outside quoted text;
- `INSERT OR REPLACE INTO t (cols)` becomes `INSERT ... ON CONFLICT (t's key) DO UPDATE SET
  c = excluded.c` for every other column (a whole-row replace, as SQLite's), and
  `INSERT OR IGNORE` becomes `ON CONFLICT DO NOTHING`;
- `BEGIN IMMEDIATE` (SQLite: take the write lock now) becomes `BEGIN` and a lock on the
  `checkpoints` table that only another writer waits for (readers never do), so two
  projectors never apply the same events: the second reads the first one's checkpoints.

A rebuild fills a fresh generation in bulk mode; there, the rows of `job_events` go by COPY
(`copy_statement`): the table is keyed by the stream sequence and the checkpoints apply each
sequence once per generation, so a fresh generation's rows never conflict.

SQLite's `total()` and `round(real, n)` exist as SQL functions in every schema we create
(`adapters.postgres.schema.COMPAT`), so the query text needs no rewriting for them.
Pure and cached: the same few dozen statements are translated once each.
"""

from __future__ import annotations

import re
from functools import lru_cache

from projections.schema import KEYS

LOCK_WRITERS = "LOCK TABLE checkpoints IN SHARE ROW EXCLUSIVE MODE"
APPEND_ONLY = frozenset({"job_events"})  # keyed by the stream sequence: written once
_INSERT = re.compile(r"^INSERT OR (REPLACE|IGNORE) INTO (\w+) \(([^)]*)\)(.*)$", re.DOTALL)


@lru_cache(maxsize=1024)
def to_postgres(sql: str) -> tuple[str, ...]:
    """The PostgreSQL statements that do what `sql` does in SQLite (one, or two for BEGIN)."""
    if sql.strip().upper() == "BEGIN IMMEDIATE":
        return ("BEGIN", LOCK_WRITERS)
    match = _INSERT.match(sql)
    if match:
        verb, table, columns, rest = match.groups()
        sql = f"INSERT INTO {table} ({columns}){rest}{_on_conflict(verb, table, columns)}"
    return (placeholders(sql),)


@lru_cache(maxsize=64)
def copy_statement(sql: str) -> str | None:
    """`COPY t (cols) FROM STDIN` for an insert of rows into an append-only table, else None."""
    match = _INSERT.match(sql)
    if match is None or match.group(2) not in APPEND_ONLY:
        return None
    return f"COPY {match.group(2)} ({match.group(3)}) FROM STDIN"


def _on_conflict(verb: str, table: str, columns: str) -> str:
    if verb == "IGNORE":
        return " ON CONFLICT DO NOTHING"
    keys = KEYS[table]
    others = [c.strip() for c in columns.split(",") if c.strip() not in keys]
    if not others:
        return f" ON CONFLICT ({', '.join(keys)}) DO NOTHING"
    sets = ", ".join(f"{c} = excluded.{c}" for c in others)
    return f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"


def placeholders(sql: str) -> str:
    """`?` -> `%s` and `%` -> `%%` outside single-quoted text and double-quoted names."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote is not None:
            out.append("%%" if char == "%" else char)
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)
