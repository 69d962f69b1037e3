"""Our read-model SQL, written for SQLite, as PostgreSQL statements.

The folds and queries stay one body of code; the differences are few and mechanical:

- `?` placeholders become `%s` (and a literal `%` becomes `%%`), outside quoted text;
- `INSERT OR REPLACE INTO t (cols)` becomes `INSERT ... ON CONFLICT (t's key) DO UPDATE SET
  c = excluded.c` for every other column (a whole-row replace, as SQLite's), and
  `INSERT OR IGNORE` becomes `ON CONFLICT DO NOTHING`; an upsert already written that way
  (`... ON CONFLICT (key) DO UPDATE SET c = excluded.c, ...`, each column set to the new
  row's value) is left as it is, and staged like a replace;
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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from projections.schema import KEYS

LOCK_WRITERS = "LOCK TABLE checkpoints IN SHARE ROW EXCLUSIVE MODE"
APPEND_ONLY = frozenset({"job_events"})  # keyed by the stream sequence: written once
# Tables whose rows are nearly always new: COPY straight in, under a savepoint, and only
# on a key already there (a retried job's phase again) back to the staged upsert.
MOSTLY_NEW = frozenset({"job_events", "job_latency"})
_INSERT = re.compile(r"^INSERT OR (REPLACE|IGNORE) INTO (\w+) \(([^)]*)\)(.*)$", re.DOTALL)
# An upsert that sets columns to the new row's values only: a replace of those columns.
_SET_NEW = re.compile(
    r"^INSERT INTO (\w+) \(([^)]*)\) VALUES \([?, ]*\)"
    r"( ON CONFLICT \([^)]*\) DO UPDATE SET (\w+ = excluded\.\w+(?:, \w+ = excluded\.\w+)*))$"
)
_ASSIGN = re.compile(r"(\w+) = excluded\.(\w+)")


@lru_cache(maxsize=1024)
def to_postgres(sql: str) -> tuple[str, ...]:
    """The PostgreSQL statements that do what `sql` does in SQLite (as one round trip)."""
    if sql.strip().upper() == "BEGIN IMMEDIATE":
        return (f"BEGIN; {LOCK_WRITERS}",)
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


@dataclass(frozen=True)
class Staged:
    """An upsert of many rows done the fast way: COPY into a staging table, then one
    `INSERT ... SELECT ... ON CONFLICT`. Rows with the same key are folded first (the last
    one wins for REPLACE, the first for IGNORE), as row-by-row statements would leave them:
    one `INSERT ... SELECT` may not touch a row twice."""

    table: str
    stage: str
    keys: tuple[int, ...]  # where the key columns are in a row
    keep_last: bool
    create: str
    copy: str
    merge: str
    direct: str | None  # COPY straight into the table, for tables whose rows are mostly new

    fixed: tuple[int, ...] = ()  # columns an upsert does not set: the first row's stay

    def distinct(self, rows: list[Sequence[Any]]) -> list[Sequence[Any]]:
        key = itemgetter(*self.keys)
        ordered = rows if self.keep_last else rows[::-1]  # the one put in last stays
        chosen = dict(zip(map(key, ordered), ordered, strict=True))
        if not self.fixed:
            return list(chosen.values())
        first = dict(zip(map(key, rows[::-1]), rows[::-1], strict=True))
        return [self._overlay(row, first[k]) for k, row in chosen.items()]

    def _overlay(self, last: Sequence[Any], first: Sequence[Any]) -> Sequence[Any]:
        if last is first:
            return last
        row = list(last)
        for i in self.fixed:
            row[i] = first[i]
        return tuple(row)


@lru_cache(maxsize=64)
def staged(sql: str) -> Staged | None:
    """How to stage `sql` (an `INSERT OR REPLACE/IGNORE`, or an upsert setting the new
    row's values, of one row of ours), else None."""
    match = _INSERT.match(sql)
    if match is not None:
        verb, table, columns, _rest = match.groups()
        return _staged(table, columns, verb == "REPLACE", _on_conflict(verb, table, columns))
    upsert = _SET_NEW.match(sql)
    if upsert is None:
        return None
    table, columns, conflict, sets = upsert.groups()
    assigned = _ASSIGN.findall(sets)
    if any(column != value for column, value in assigned):
        return None  # a column set from another one: not a replace
    names = _names(columns)
    kept = {n for n in names if n not in KEYS[table]} - {column for column, _ in assigned}
    fixed = tuple(i for i, n in enumerate(names) if n in kept)
    return _staged(table, columns, True, conflict, fixed)


def _names(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


def _staged(
    table: str, columns: str, keep_last: bool, conflict: str, fixed: tuple[int, ...] = ()
) -> Staged:
    names = _names(columns)
    stage = f"baker_stage_{table}"
    keys = tuple(names.index(k) for k in KEYS[table])
    listed = ", ".join(names)
    return Staged(
        table=table,
        stage=stage,
        keys=keys,
        keep_last=keep_last,
        # Temporary, so never seen by another session; emptied by every commit.
        create=f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS",
        copy=f"COPY {stage} ({listed}) FROM STDIN",
        merge=f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {stage}"  # noqa: S608
        + conflict,
        direct=f"COPY {table} ({listed}) FROM STDIN" if table in MOSTLY_NEW else None,
        fixed=fixed,
    )


def _on_conflict(verb: str, table: str, columns: str) -> str:
    if verb == "IGNORE":
        return " ON CONFLICT DO NOTHING"
    keys = KEYS[table]
    others = [c for c in _names(columns) if c not in keys]
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
