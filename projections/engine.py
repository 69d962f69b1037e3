"""Applying a batch of events to the read model in one transaction with the checkpoints.

The tracking pattern: rows and each projection's last applied sequence are committed together,
so after a crash at any point the database says exactly where to resume. An event a fold
cannot apply is written to `dead_letters` with the error and skipped (the policy: never block
the log behind one event, never drop it silently).

Plain functions on a `WriteDb`: a writer runs a whole batch, transaction and folds,
in one call on its own thread (`adapters.sqlite.Writer`), instead of a thread hop per
statement (a dozen per batch, which cost more than the writing itself).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

from domain.events import Envelope, encode_event
from projections.agent import USAGE_COLUMNS
from projections.jobs import (
    EVENT_COLUMNS,
    JOB_COLUMNS,
    JOB_SET_AT_DISPATCH,
    LABEL_COLUMNS,
    JobRow,
    event_row,
    fold_job,
    label_rows,
)
from projections.row_cache import RowCache, Rows
from projections.schema import KEYS, PROJECTIONS, ProjectionSpec
from projections.sql import WriteDb
from projections.system import (
    BRAIN_COLUMNS,
    EXTENSION_COLUMNS,
    HANDOFF_COLUMNS,
    SERVICE_COLUMNS,
    TASK_COLUMNS,
    Row,
    fold_brain,
    fold_extension,
    fold_handoff,
    fold_service,
    fold_task,
)

log = logging.getLogger("baker.projections")


class Item(Protocol):
    """What the engine needs of a stored event (the event store's `StoredEvent`)."""

    @property
    def seq(self) -> int: ...
    @property
    def subject(self) -> str: ...
    @property
    def envelope(self) -> Envelope: ...
    @property
    def raw(self) -> bytes: ...


class Bad(Protocol):
    """What the engine needs of an unreadable stored message (the store's `BadEvent`)."""

    @property
    def seq(self) -> int: ...
    @property
    def subject(self) -> str: ...
    @property
    def error(self) -> str: ...
    @property
    def raw(self) -> bytes: ...


@dataclass(frozen=True)
class BatchResult:
    checkpoints: dict[str, int]
    dead_letters: int


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    projection: str
    subject: str
    error: str
    document: bytes


# Table and column names below come from our own constants, never from input.


def _upsert(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def _upsert_in_place(table: str, columns: Sequence[str], fixed: Sequence[str] = ()) -> str:
    """A whole-row write like `_upsert`'s, as an update of the row where it is: REPLACE
    deletes the old row and inserts the new one, rewriting an entry in every index of the
    table; an update rewrites only the indexes on the columns it sets, and `fixed` columns
    (never changed once the row exists) are not set."""
    keys = KEYS[table]
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys and c not in fixed)
    marks = ", ".join("?" for _ in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


JOBS_UPSERT = _upsert_in_place("jobs", JOB_COLUMNS, JOB_SET_AT_DISPATCH)


def _load(
    db: WriteDb,
    cache: Rows,
    table: str,
    key: str,
    columns: Sequence[str],
    ids: Iterable[str],
) -> dict[str, dict[str, Any]]:
    rows, missing = cache.take(table, ids)
    wanted = list(missing)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT {', '.join(columns)} FROM {table} WHERE {key} IN ({marks})"  # noqa: S608
        for rec in db.execute(sql, chunk):
            rows[rec[columns.index(key)]] = dict(zip(columns, rec, strict=True))
    return rows


def _stored_ids(items: Iterable[Item]) -> set[str]:
    """The aggregates of `items` that may have a row already. One whose first event here is
    its version 1 has none: every append names the version it follows, so version 1 is the
    aggregate's first event, and rows are made only by applying events (skipping the lookup
    halves a batch's reads while jobs are being created)."""
    first: dict[str, int] = {}
    for item in items:
        first.setdefault(item.envelope.aggregate_id, item.envelope.version)
    return {agg_id for agg_id, version in first.items() if version != 1}


def _dead(item: Item, projection: str, exc: Exception) -> DeadLetter:
    log.error(
        "projection %s cannot apply event seq=%d (%s): %s",
        projection, item.seq, item.envelope.type, exc,
        extra={"seq": item.seq, "aggregate_id": item.envelope.aggregate_id},
    )  # fmt: skip
    return DeadLetter(
        item.seq,
        projection,
        item.subject,
        f"{type(exc).__name__}: {exc}",
        encode_event(item.envelope),
    )


def apply_jobs(db: WriteDb, items: list[Item], cache: Rows) -> list[DeadLetter]:
    rows: dict[str, Any] = _load(db, cache, "jobs", "id", JOB_COLUMNS, _stored_ids(items))
    changed: set[str] = set()
    events: list[tuple[Any, ...]] = []
    latencies: list[tuple[Any, ...]] = []
    usage: list[tuple[Any, ...]] = []
    labels: list[tuple[str, str, str]] = []
    counts: Counter[tuple[str, str]] = Counter()
    dead: list[DeadLetter] = []
    for item in items:
        job_id = item.envelope.aggregate_id
        old: JobRow | None = rows.get(job_id)
        try:
            change = fold_job(old, item.envelope, item.seq)
        except Exception as exc:  # a poison event must not stop the projection
            dead.append(_dead(item, "jobs", exc))
            continue
        new = change.row
        if old is None or old["status"] != new["status"]:
            if old is not None:
                counts[(str(old["type"]), old["status"])] -= 1
            counts[(str(new["type"]), new["status"])] += 1
        latencies += [(job_id, phase, new["type"], ms) for phase, ms in change.latencies]
        if change.usage is not None:
            usage.append((*change.usage, 1))
        if old is None:
            labels += label_rows(new)
        rows[job_id] = new
        changed.add(job_id)
        document = item.raw or encode_event(item.envelope)
        events.append(event_row(item.envelope, item.seq, document, new["updated_at"]))
    db.executemany(JOBS_UPSERT, [tuple(rows[j].values()) for j in changed])
    cache.put("jobs", {j: rows[j] for j in changed})
    db.executemany(_upsert("job_events", EVENT_COLUMNS), events)
    db.executemany(_upsert("job_labels", LABEL_COLUMNS), labels)
    db.executemany(_upsert("job_latency", ("job_id", "phase", "type", "ms")), latencies)
    db.executemany(
        "INSERT INTO job_stats (type, status, count) VALUES (?, ?, ?) "
        "ON CONFLICT (type, status) DO UPDATE SET count = job_stats.count + excluded.count",
        [(t, s, n) for (t, s), n in counts.items() if n],
    )
    # Zero counts are removed so the table depends on the events only, not on batch sizes.
    db.execute("DELETE FROM job_stats WHERE count = 0")
    _add_usage(db, usage)
    return dead


def _add_usage(db: WriteDb, records: list[tuple[Any, ...]]) -> None:
    """Add each model call to its (job, model, day) row, one statement per call in stream
    order: the float sum of the cost is then the same whatever batches the calls came in."""
    adds = ", ".join(
        f"{c} = job_usage.{c} + excluded.{c}" for c in USAGE_COLUMNS[4:] if c != "cost_usd"
    )
    db.executemany(
        f"INSERT INTO job_usage ({', '.join(USAGE_COLUMNS)}) VALUES "  # noqa: S608
        f"({', '.join('?' * len(USAGE_COLUMNS))}) ON CONFLICT (job_id, model, day) DO UPDATE "
        f"SET {adds}, cost_usd = round(job_usage.cost_usd + excluded.cost_usd, 6)",
        records,
    )


Fold = Callable[[Row | None, Envelope, int], Row]
Applier = Callable[[WriteDb, list[Item], Rows], list[DeadLetter]]


def row_applier(
    projection: str, aggregate: str, table: str, key: str, columns: Sequence[str], fold: Fold
) -> Applier:
    """An applier for projections that keep one row per aggregate."""

    def apply(db: WriteDb, items: list[Item], cache: Rows) -> list[DeadLetter]:
        mine = [i for i in items if i.envelope.aggregate == aggregate]
        if not mine:
            return []
        rows = _load(db, cache, table, key, columns, _stored_ids(mine))
        changed: set[str] = set()
        dead: list[DeadLetter] = []
        for item in mine:
            agg_id = item.envelope.aggregate_id
            try:
                rows[agg_id] = fold(rows.get(agg_id), item.envelope, item.seq)
            except Exception as exc:
                dead.append(_dead(item, projection, exc))
                continue
            changed.add(agg_id)
        values = [tuple(rows[a][c] for c in columns) for a in changed]
        db.executemany(_upsert(table, columns), values)
        cache.put(table, {a: rows[a] for a in changed})
        return dead

    return apply


APPLIERS: dict[str, list[Applier]] = {
    "jobs": [apply_jobs],
    "tasks": [row_applier("tasks", "task", "tasks", "id", TASK_COLUMNS, fold_task)],
    "extensions": [
        row_applier(
            "extensions", "extension", "extensions", "id", EXTENSION_COLUMNS, fold_extension
        )
    ],
    "services": [
        row_applier("services", "service", "services", "id", SERVICE_COLUMNS, fold_service)
    ],
    "handoffs": [
        row_applier("handoffs", "brain", "brains", "instance", BRAIN_COLUMNS, fold_brain),
        row_applier("handoffs", "handoff", "handoffs", "id", HANDOFF_COLUMNS, fold_handoff),
    ],
}


def read_checkpoints(db: WriteDb) -> dict[str, tuple[int, int]]:
    """projection -> (last applied seq, version it was built with)."""
    rows = db.execute("SELECT projection, last_seq, version FROM checkpoints")
    return {name: (seq, version) for name, seq, version in rows}


def init_checkpoints(db: WriteDb, specs: Iterable[ProjectionSpec] | None = None) -> None:
    """Start every projection that has no checkpoint at 0 with its current version."""
    db.executemany(
        "INSERT OR IGNORE INTO checkpoints (projection, last_seq, version) VALUES (?, 0, ?)",
        [(s.name, s.version) for s in (specs or PROJECTIONS.values())],
    )


def apply_batch(
    db: WriteDb,
    items: Sequence[Item | Bad],
    checkpoints: dict[str, int],
    *,
    fail_before_commit: Callable[[], None] | None = None,
    cache: RowCache | None = None,
) -> BatchResult:
    """Apply `items` (in stream order) and advance the checkpoints, all in one transaction.
    Returns the new checkpoints; on any error nothing is written. A writer that applies
    batch after batch passes its `cache` of the rows it folded (`projections.row_cache`)."""
    if not items:
        return BatchResult(checkpoints, 0)
    cache = cache if cache is not None else RowCache()
    db.execute("BEGIN IMMEDIATE")
    try:
        # The database's checkpoints are the truth: another projector writing the same file
        # may have applied part of this batch already; those events are skipped, not doubled.
        stored = {n: seq for n, (seq, _v) in read_checkpoints(db).items()}
        cache.begin(stored)
        checkpoints = {n: max(seq, stored.get(n, seq)) for n, seq in checkpoints.items()}
        result = apply_items(db, items, checkpoints, cache)
        if fail_before_commit is not None:
            fail_before_commit()
        db.execute("COMMIT")
    except BaseException:
        cache.clear()
        db.execute("ROLLBACK")
        raise
    cache.stamp({**stored, **result.checkpoints})
    return result


def apply_items(
    db: WriteDb, items: Sequence[Item | Bad], checkpoints: dict[str, int], rows: Rows
) -> BatchResult:
    """The writes of `items` after `checkpoints`, inside the caller's transaction."""
    last = items[-1].seq
    dead: list[DeadLetter] = []
    by_aggregate: dict[str, list[Item]] = {}
    bad: list[Bad] = []
    for i in items:
        env = getattr(i, "envelope", None)
        if env is None:
            bad.append(cast(Bad, i))
        else:
            by_aggregate.setdefault(env.aggregate, []).append(cast(Item, i))
    floor = min(checkpoints.values(), default=0)
    for name, appliers in APPLIERS.items():
        if name not in checkpoints:
            continue
        after, aggregates = checkpoints[name], PROJECTIONS[name].aggregates
        mine = [i for a in aggregates for i in by_aggregate.get(a, ()) if i.seq > after]
        if len(aggregates) > 1:
            mine.sort(key=lambda i: i.seq)
        for apply in appliers:
            dead += apply(db, mine, rows)
    dead += [DeadLetter(b.seq, "*", b.subject, b.error, b.raw) for b in bad if b.seq > floor]
    db.executemany(
        "INSERT OR IGNORE INTO dead_letters (seq, projection, subject, error, document) "
        "VALUES (?, ?, ?, ?, ?)",
        [(d.seq, d.projection, d.subject, d.error, d.document) for d in dead],
    )
    advanced = {name: max(seq, last) for name, seq in checkpoints.items()}
    db.executemany(
        "UPDATE checkpoints SET last_seq = ? WHERE projection = ?",
        [(seq, name) for name, seq in advanced.items()],
    )
    return BatchResult(advanced, len(dead))


def as_json(value: Any) -> str:
    return orjson.dumps(value).decode()
