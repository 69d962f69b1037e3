"""Typed reads of the read model, used by the API and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from domain.events import format_time, parse_time
from projections.jobs import JOB_COLUMNS, JobRow
from projections.sql import ReadDb
from projections.system import (
    BRAIN_COLUMNS,
    EXTENSION_COLUMNS,
    HANDOFF_COLUMNS,
    SERVICE_COLUMNS,
    TASK_COLUMNS,
)

MAX_LIMIT = 500
PHASES = ("dispatched_to_received", "received_to_running", "running_to_terminal")


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    type: str | None = None
    limit: int = 50
    cursor: int | None = None  # `next` of the previous page (a dispatch sequence)
    labels: tuple[tuple[str, str], ...] = ()  # (key, value) pairs that must all hold


@dataclass(frozen=True)
class JobPage:
    jobs: list[dict[str, Any]]
    next: int | None


def job_document(row: JobRow | dict[str, Any]) -> dict[str, Any]:
    """A job row as API JSON: camelCase keys, JSON columns decoded."""
    doc: dict[str, Any] = {_camel(key): value for key, value in row.items()}
    for key in ("result", "payload", "warnings", "labels"):
        if doc[key] is not None:
            doc[key] = orjson.loads(doc[key])
    doc["cancelRequested"] = bool(doc["cancelRequested"])
    return doc


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def label_clauses(labels: Iterable[tuple[str, str]]) -> list[tuple[str, Any]]:
    """One `_where` clause per label filter: the job has that key with that value (the
    `job_labels` index finds the jobs; every filter must hold)."""
    return [
        ("id IN (SELECT job_id FROM job_labels WHERE key = ? AND value = ?)", pair)
        for pair in labels
    ]


def _where(filters: Iterable[tuple[str, Any]]) -> tuple[str, list[Any]]:
    parts = [(clause, value) for clause, value in filters if value is not None]
    if not parts:
        return "", []
    args: list[Any] = []
    for _clause, value in parts:  # a clause with several marks takes a tuple of values
        args += list(value) if isinstance(value, tuple) else [value]
    return " WHERE " + " AND ".join(c for c, _ in parts), args


def has_labels(row: JobRow | dict[str, Any], labels: Iterable[tuple[str, str]]) -> bool:
    """Whether a row (labels as stored JSON) carries every (key, value) of `labels`."""
    stored = row.get("labels")
    held: dict[str, str] = orjson.loads(stored) if isinstance(stored, str) else {}
    return all(held.get(key) == value for key, value in labels)


async def list_jobs(db: ReadDb, f: JobFilter) -> JobPage:
    """Newest first, keyset-paginated on the dispatch sequence."""
    limit = max(1, min(f.limit, MAX_LIMIT))
    where, args = _where(
        [
            ("status = ?", f.status), ("type = ?", f.type), ("dispatched_seq < ?", f.cursor),
            *label_clauses(f.labels),
        ]
    )  # fmt: skip
    sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs{where} ORDER BY dispatched_seq DESC LIMIT ?"  # noqa: S608
    async with db.execute(sql, [*args, limit + 1]) as cursor:
        rows = [dict(zip(JOB_COLUMNS, r, strict=True)) async for r in cursor]
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage([job_document(r) for r in rows], rows[-1]["dispatched_seq"] if more else None)


async def get_job(db: ReadDb, job_id: str) -> dict[str, Any] | None:
    sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?"  # noqa: S608
    async with db.execute(sql, (job_id,)) as cursor:
        row = await cursor.fetchone()
    return job_document(dict(zip(JOB_COLUMNS, row, strict=True))) if row else None


@dataclass(frozen=True)
class EventFilter:
    job_id: str | None = None
    type: str | None = None
    worker_id: str | None = None
    since: str | None = None  # ISO-8601, inclusive; without an offset it is UTC
    until: str | None = None  # inclusive
    limit: int = 100


def _moment(text: str | None, name: str) -> str | None:
    """An ISO-8601 time in the stored form (UTC, microseconds, `Z`), so that comparing the
    strings compares the times. `ValueError` naming the field if it is not a time."""
    if text is None:
        return None
    try:
        return format_time(parse_time(text))
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not an ISO-8601 time") from None


async def search_events(db: ReadDb, f: EventFilter) -> list[dict[str, Any]]:
    """Job events (rejected transitions included) by job, type, worker and time, oldest
    first. `ValueError` if `since` or `until` is not a time."""
    since, until = _moment(f.since, "since"), _moment(f.until, "until")
    where, args = _where(
        [
            ("job_id = ?", f.job_id), ("type = ?", f.type), ("worker_id = ?", f.worker_id),
            ("occurred_at >= ?", since), ("occurred_at <= ?", until),
        ]
    )  # fmt: skip
    sql = f"SELECT seq, document FROM job_events{where} ORDER BY seq LIMIT ?"  # noqa: S608
    async with db.execute(sql, [*args, max(1, min(f.limit, 10 * MAX_LIMIT))]) as cursor:
        return [{"seq": seq, **orjson.loads(doc)} async for seq, doc in cursor]


async def job_stats(db: ReadDb) -> dict[str, Any]:
    """Counts per type and status, and p50/p95/p99 of each phase per type (milliseconds)."""
    counts: dict[str, dict[str, int]] = {}
    async with db.execute("SELECT type, status, count FROM job_stats WHERE count != 0") as cur:
        async for job_type, status, count in cur:
            counts.setdefault(job_type, {})[status] = count
    latency: dict[str, dict[str, dict[str, int | None]]] = {}
    async with db.execute(
        "SELECT type, phase, count(*) FROM job_latency GROUP BY type, phase"
    ) as cur:
        groups = [row async for row in cur]
    for job_type, phase, n in groups:
        latency.setdefault(job_type, {})[phase] = {
            "count": n,
            **{f"p{q}": await _percentile(db, job_type, phase, n, q) for q in (50, 95, 99)},
        }
    return {"counts": counts, "latencyMs": latency}


def nearest_rank(percent: int, n: int) -> int:
    """The 1-based nearest rank of the `percent`th percentile of `n` sorted values:
    ceil(percent / 100 * n), in integers so that 95 % of 100 is rank 95, not 96."""
    return max(1, min(n, -(-percent * n // 100)))


async def _percentile(db: ReadDb, job_type: str, phase: str, n: int, percent: int) -> int | None:
    offset = nearest_rank(percent, n) - 1
    async with db.execute(
        "SELECT ms FROM job_latency WHERE type = ? AND phase = ? ORDER BY ms LIMIT 1 OFFSET ?",
        (job_type, phase, offset),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else None


async def _rows(
    db: ReadDb, table: str, columns: tuple[str, ...], order: str, where: str = ""
) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(columns)} FROM {table} {where} ORDER BY {order}"  # noqa: S608
    async with db.execute(sql) as cursor:
        return [{_camel(k): v for k, v in zip(columns, r, strict=True)} async for r in cursor]


async def extensions(db: ReadDb) -> list[dict[str, Any]]:
    rows = await _rows(db, "extensions", EXTENSION_COLUMNS, "id")
    for row in rows:
        row["tools"] = orjson.loads(row["tools"]) if row["tools"] else []
        row["online"] = row["status"] == "online"
    return rows


async def services(db: ReadDb) -> list[dict[str, Any]]:
    return await _rows(db, "services", SERVICE_COLUMNS, "service, instance")


async def tasks(db: ReadDb, limit: int = 100) -> list[dict[str, Any]]:
    rows = await _rows(
        db, "tasks", TASK_COLUMNS, f"last_seq DESC LIMIT {max(1, min(limit, MAX_LIMIT))}"
    )
    return [_task_doc(r) for r in rows]


async def task(db: ReadDb, task_id: str) -> dict[str, Any] | None:
    sql = f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE id = ?"  # noqa: S608
    async with db.execute(sql, (task_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return _task_doc({_camel(k): v for k, v in zip(TASK_COLUMNS, row, strict=True)})


def _task_doc(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("result") is not None:
        row["result"] = orjson.loads(row["result"])
    return row


async def handoff_state(db: ReadDb, history: int = 20) -> dict[str, Any]:
    brains = await _rows(db, "brains", BRAIN_COLUMNS, "updated_at DESC")
    handoffs = await _rows(db, "handoffs", HANDOFF_COLUMNS, f"last_seq DESC LIMIT {history}")
    active = next((b for b in brains if b["status"] == "active"), None)
    return {
        "active": active,
        "generation": active["generation"] if active else None,
        "inProgress": next((h for h in handoffs if h["status"] in ("requested", "draining")), None),
        "brains": brains,
        "history": handoffs,
    }


async def checkpoints(db: ReadDb) -> dict[str, int]:
    async with db.execute("SELECT projection, last_seq FROM checkpoints") as cursor:
        return {name: seq async for name, seq in cursor}


async def dead_letters(db: ReadDb, limit: int = 100) -> list[dict[str, Any]]:
    async with db.execute(
        "SELECT seq, projection, subject, error FROM dead_letters ORDER BY seq DESC LIMIT ?",
        (limit,),
    ) as cursor:
        return [
            {"seq": s, "projection": p, "subject": subj, "error": e}
            async for s, p, subj, e in cursor
        ]


__all__ = [
    "PHASES", "EventFilter", "JobFilter", "JobPage", "checkpoints", "dead_letters",
    "extensions", "get_job", "handoff_state", "has_labels", "job_document", "job_stats",
    "label_clauses", "list_jobs",
    "nearest_rank", "search_events", "services", "task", "tasks",
]  # fmt: skip
