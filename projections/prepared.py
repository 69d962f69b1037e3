"""Folding a batch ahead of writing it, so the folding overlaps the writing of the one before.

`apply_batch` folds inside its transaction: the database waits while Python folds, and Python
waits while the database writes. A projector that follows the log instead folds batch N+1
(`prepare_batch`, on a thread of its own) while batch N is being written, from the rows its
`RowCache` holds: the writes are recorded, not run. `write_prepared` then runs them in one
transaction, after checking under the writers' lock that the database's checkpoints are the
ones the fold started from. If they are not (another projector took a turn), or a row had to
be read from the database, the batch goes the ordinary way (`apply_batch`); nothing folded
ahead is ever written over other work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from projections.engine import Bad, BatchResult, Item, apply_items, read_checkpoints
from projections.row_cache import RowCache
from projections.sql import WriteDb


class NeedsRead(Exception):
    """The fold needs a row from the database."""


@dataclass(frozen=True)
class Call:
    sql: str
    parameters: Sequence[Any] | list[Sequence[Any]]
    many: bool


class Recorder:
    """A `WriteDb` that records writes and refuses reads."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Iterable[Any]:
        if sql.lstrip()[:6].upper() == "SELECT":
            raise NeedsRead(sql)
        self.calls.append(Call(sql, tuple(parameters), many=False))
        return ()

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object:
        rows = list(parameters)
        if rows:
            self.calls.append(Call(sql, rows, many=True))
        return None


@dataclass(frozen=True)
class PreparedBatch:
    base: dict[str, int]  # the checkpoints it was folded after
    epoch: int  # the cache's, when folded
    calls: list[Call]
    result: BatchResult


def prepare_batch(
    items: Sequence[Item | Bad], after: dict[str, int], cache: RowCache
) -> PreparedBatch | None:
    """`items` folded after `after` from the rows in `cache`, or None if the cache is not
    as of `after` or a row had to be read."""
    if not items or not cache.follows(after):
        return None
    rows = cache.pinned()
    recorder = Recorder()
    try:
        result = apply_items(recorder, items, dict(after), rows)
    except Exception:
        # Rows of this batch may be in the cache already: the batch is applied from the
        # database instead, which must not find them.
        cache.clear()
        return None
    cache.stamp(result.checkpoints, rows.epoch)
    return PreparedBatch(dict(after), rows.epoch, recorder.calls, result)


def write_prepared(db: WriteDb, prepared: PreparedBatch, cache: RowCache) -> BatchResult | None:
    """Write a prepared batch in one transaction; None (nothing written) if the database or
    the cache moved on since it was folded."""
    if prepared.epoch != cache.epoch:
        return None
    db.execute("BEGIN IMMEDIATE")
    try:
        stored = read_checkpoints(db)
        current = all(stored.get(n, (None, 0))[0] == s for n, s in prepared.base.items())
        if current:
            for call in prepared.calls:
                if call.many:
                    db.executemany(call.sql, call.parameters)
                else:
                    db.execute(call.sql, call.parameters)
            db.execute("COMMIT")
    except BaseException:
        cache.clear()
        db.execute("ROLLBACK")
        raise
    if not current:
        cache.clear()
        db.execute("ROLLBACK")
        return None
    return prepared.result
