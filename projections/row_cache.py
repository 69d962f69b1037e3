"""The rows a projector last folded, kept so the next batch need not read them back.

A job's events usually span several batches; without this, every batch reads back the rows
the one before it wrote (on PostgreSQL a round trip and a few milliseconds per batch), and a
batch could not be folded before the one ahead of it is written (`projections.prepared`).

The rows are trusted only as of the checkpoints they were folded up to (the stamp): a batch
compares the checkpoints it finds in the database, under the writers' lock, with the stamp
and forgets everything on any difference (another projector took a turn). Any failure forgets
everything too, and moves the epoch on, so a fold that was under way on another thread cannot
put its rows back. Least recently used rows go first when there are too many.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

Row = dict[str, Any]


class Rows(Protocol):
    """What a fold reads its aggregates' rows from and hands its new rows to."""

    def take(self, table: str, ids: Iterable[str]) -> tuple[dict[str, Row], set[str]]: ...
    def put(self, table: str, rows: Mapping[str, Row]) -> None: ...


class RowCache:
    def __init__(self, limit: int = 10_000) -> None:  # a job row is ~2 KB: ~20 MB at most
        self.limit = limit
        self._tables: dict[str, OrderedDict[str, Row]] = {}
        self._stamp: dict[str, int] | None = None  # checkpoints the rows are folded up to
        self._lock = threading.Lock()  # folded on one thread, written on another
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def follows(self, checkpoints: Mapping[str, int]) -> bool:
        """True if the rows kept are the ones as of `checkpoints`."""
        with self._lock:
            stamp = self._stamp
            return stamp is not None and all(stamp.get(n) == s for n, s in checkpoints.items())

    def begin(self, stored: Mapping[str, int]) -> None:
        """A batch is applied after `stored` (the database's checkpoints): forget the rows
        unless they are as of those."""
        if not self.follows(stored):
            self.clear()

    def take(self, table: str, ids: Iterable[str]) -> tuple[dict[str, Row], set[str]]:
        """The rows of `ids` kept here, and the ids that must be read from the database."""
        found: dict[str, Row] = {}
        missing: set[str] = set()
        with self._lock:
            kept = self._tables.get(table, OrderedDict())
            for agg_id in ids:
                row = kept.get(agg_id)
                if row is None:
                    missing.add(agg_id)
                else:
                    found[agg_id] = row
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def put(self, table: str, rows: Mapping[str, Row], epoch: int | None = None) -> None:
        """Rows a batch folded (ignored if the cache was forgotten since `epoch`)."""
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return
            kept = self._tables.setdefault(table, OrderedDict())
            for agg_id, row in rows.items():
                kept[agg_id] = row
                kept.move_to_end(agg_id)
            while len(kept) > self.limit:
                kept.popitem(last=False)

    def stamp(self, checkpoints: Mapping[str, int], epoch: int | None = None) -> None:
        """The rows kept are now as of `checkpoints`."""
        with self._lock:
            if epoch is None or epoch == self.epoch:
                self._stamp = dict(checkpoints)

    def pinned(self) -> Pinned:
        """A view whose rows are put only while nothing is forgotten (a fold ahead)."""
        return Pinned(self, self.epoch)

    def clear(self) -> None:
        with self._lock:
            self._tables = {}
            self._stamp = None
            self.epoch += 1

    def __len__(self) -> int:
        with self._lock:
            return sum(len(rows) for rows in self._tables.values())


class Pinned:
    def __init__(self, cache: RowCache, epoch: int) -> None:
        self.cache = cache
        self.epoch = epoch

    def take(self, table: str, ids: Iterable[str]) -> tuple[dict[str, Row], set[str]]:
        return self.cache.take(table, ids)

    def put(self, table: str, rows: Mapping[str, Row]) -> None:
        self.cache.put(table, rows, self.epoch)
