"""Building read models from the event log: rebuild (blue-green swap) and verify.

`build` replays the log into a generation of a read-model store (a SQLite file, or a
PostgreSQL schema). `rebuild` builds the next generation beside the current one and swaps it
in atomically while readers keep reading the old one; the generation it replaced is kept,
older ones are removed. `verify` builds a shadow copy up to the live checkpoint and compares
it with the live read model table by table.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters.eventstore import EventStore
from adapters.readmodel import ReadModelStore, SqliteStore, StoreWriter
from projections import queries
from projections.engine import apply_batch, init_checkpoints, read_checkpoints
from projections.schema import ALL_TABLES, KEYS, PROJECTIONS
from projections.sql import ReadDb, WriteDb

log = logging.getLogger("baker.rebuild")
Progress = Callable[[int, int, float], None]  # (applied up to seq, target seq, events/s)


def as_store(target: Path | ReadModelStore) -> ReadModelStore:
    """A read-model store; a path is the SQLite file of that name."""
    return SqliteStore(target) if isinstance(target, Path) else target


async def build(
    store: EventStore,
    target: Path | ReadModelStore,
    *,
    generation: str | None = None,
    upto: int | None = None,
    projections: Iterable[str] | None = None,
    copy_from: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Replay the log into `generation` of `target` (default: its current one, created if
    need be, which only a SQLite file nobody reads yet may be: PostgreSQL's current generation
    has views on it) up to `upto` (default: the head now). With `projections` and `copy_from`, copy
    that generation and rebuild only the named projections."""
    rm = as_store(target)
    if generation is None:
        await rm.initialise()
    names = list(projections or PROJECTIONS)
    writer = await rm.open_writer(generation)
    try:
        await writer.run(lambda db: _prepare(rm, db, names, copy_from))
        head = upto if upto is not None else await store.head_seq()
        last = await _replay(store, writer, head, progress)
        await writer.run(rm.live_mode)
        return last
    finally:
        await writer.close()


def _prepare(rm: ReadModelStore, db: WriteDb, names: list[str], copy_from: str | None) -> None:
    if copy_from is not None:
        rm.copy_from(db, copy_from)
    rm.bulk_mode(db)
    # A rebuilt projection's tables are dropped, not emptied: a new version may have changed
    # their columns, and `ensure_schema` creates them as they are now.
    for name in names:
        for table in PROJECTIONS[name].tables:
            db.execute(f"DROP TABLE IF EXISTS {table}")
    # A fresh generation loads faster without secondary indexes; they are built at the end.
    rm.ensure_schema(db, indexes=copy_from is not None)
    for name in names:
        spec = PROJECTIONS[name]
        db.execute("DELETE FROM dead_letters WHERE projection = ?", (name,))
        db.execute(
            "INSERT OR REPLACE INTO checkpoints (projection, last_seq, version) VALUES (?, 0, ?)",
            (name, spec.version),
        )
    init_checkpoints(db)


async def _replay(
    store: EventStore, writer: StoreWriter, head: int, progress: Progress | None
) -> int:
    stored = await writer.run(read_checkpoints)
    checkpoints = {name: seq for name, (seq, _v) in stored.items()}
    start = min(checkpoints.values(), default=0) + 1
    if start > head:
        return head
    began = time.monotonic()
    applied = start - 1
    batches = store.tail_batches(start, max_batch=5000, max_wait=0.05, idle=2.0)
    try:
        async for batch in batches:
            mine = [item for item in batch if item.seq <= head]
            if mine:
                before = checkpoints
                result = await writer.run(lambda db: apply_batch(db, mine, before))  # noqa: B023
                checkpoints = result.checkpoints
                applied = mine[-1].seq
            if progress is not None:
                rate = (applied - start + 1) / max(time.monotonic() - began, 1e-9)
                progress(applied, head, rate)
            if applied >= head:
                break
    finally:
        await batches.aclose()
    return applied


@dataclass
class RebuildResult:
    generation: str
    previous: str | None
    last_seq: int
    seconds: float
    removed: list[str] = field(default_factory=list)

    def summary(self, projection: str | None = None) -> dict[str, Any]:
        """What `baker rebuild --json` prints."""
        return {
            "generation": self.generation, "previous": self.previous,
            "projection": projection, "lastSeq": self.last_seq,
            "seconds": round(self.seconds, 3), "removed": self.removed,
        }  # fmt: skip


async def rebuild(
    store: EventStore,
    target: Path | ReadModelStore,
    *,
    projection: str | None = None,
    progress: Progress | None = None,
    keep: int = 1,
) -> RebuildResult:
    """Build the next generation and swap it in, then remove superseded generations except
    the `keep` newest (by default the one just replaced: open readers, and a way back)."""
    started = time.monotonic()
    rm = as_store(target)
    previous = await rm.current()
    generation = await rm.next_generation()
    names = [projection] if projection else None
    copy_from = previous if projection else None
    last = await build(
        store, rm, generation=generation, projections=names, copy_from=copy_from,
        progress=progress,
    )  # fmt: skip
    await rm.swap_in(generation)
    removed = await rm.prune(keep=keep)
    log.info(
        "swapped in %s (up to seq %d); removed %s",
        generation,
        last,
        ", ".join(removed) or "nothing",
    )
    return RebuildResult(generation, previous, last, time.monotonic() - started, removed)


@dataclass
class TableDiff:
    table: str
    live_rows: int
    shadow_rows: int
    only_live: list[Any] = field(default_factory=list)
    only_shadow: list[Any] = field(default_factory=list)
    different: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class VerifyReport:
    checkpoint: int
    tables: dict[str, bool]
    diffs: list[TableDiff]

    @property
    def ok(self) -> bool:
        return not self.diffs


async def verify(
    store: EventStore,
    target: Path | ReadModelStore,
    *,
    progress: Progress | None = None,
    show: int = 10,
) -> VerifyReport:
    """Rebuild a shadow up to the live checkpoint and compare every table."""
    rm = as_store(target)
    async with rm.snapshot() as live:
        points = set((await queries.checkpoints(live)).values())
        if len(points) != 1:
            raise RuntimeError(f"projections are at different checkpoints {sorted(points)}; retry")
        upto = points.pop()
        async with rm.shadow() as shadow_rm:
            await shadow_rm.initialise()
            generation = await shadow_rm.next_generation()  # nobody reads it while it fills
            await build(store, shadow_rm, generation=generation, upto=upto, progress=progress)
            await shadow_rm.swap_in(generation)
            async with shadow_rm.snapshot() as shadow:
                return await _compare(live, shadow, upto, show)


async def _compare(live: ReadDb, shadow: ReadDb, upto: int, show: int) -> VerifyReport:
    report = VerifyReport(upto, {}, [])
    for table in ALL_TABLES:
        a, b = await _digest(live, table), await _digest(shadow, table)
        report.tables[table] = a == b
        if a != b:
            report.diffs.append(await _diff(live, shadow, table, show))
    return report


async def _rows(db: ReadDb, table: str) -> list[tuple[Any, ...]]:
    order = ", ".join(KEYS[table])
    async with db.execute(f"SELECT * FROM {table} ORDER BY {order}") as cursor:  # noqa: S608
        return [tuple(r) async for r in cursor]


async def _digest(db: ReadDb, table: str) -> tuple[int, str]:
    """Row count and a checksum over the rows in key order, streamed."""
    digest, count = hashlib.sha256(), 0
    order = ", ".join(KEYS[table])
    async with db.execute(f"SELECT * FROM {table} ORDER BY {order}") as cursor:  # noqa: S608
        async for row in cursor:
            count += 1
            digest.update(orjson.dumps([v.hex() if isinstance(v, bytes) else v for v in row]))
    return count, digest.hexdigest()


async def _diff(live: ReadDb, shadow: ReadDb, table: str, show: int) -> TableDiff:
    async with live.execute(f"SELECT * FROM {table} LIMIT 0") as cursor:  # noqa: S608
        names = [d[0] for d in cursor.description]
    width = len(KEYS[table])
    left = {r[:width]: r for r in await _rows(live, table)}
    right = {r[:width]: r for r in await _rows(shadow, table)}
    diff = TableDiff(table, len(left), len(right))
    diff.only_live = [k for k in left if k not in right][:show]
    diff.only_shadow = [k for k in right if k not in left][:show]
    for key in left.keys() & right.keys():
        if left[key] != right[key] and len(diff.different) < show:
            cols = {
                n: {"live": x, "shadow": y}
                for n, x, y in zip(names, left[key], right[key], strict=True)
                if x != y
            }
            diff.different.append({"key": key, "columns": cols})
    return diff
