"""Point in time: the jobs as they were at a stream sequence.

A job whose row has not changed since that sequence is read as it is; only the jobs that
changed after it are folded again, from their own events up to it (index range scans), so the
cost follows the jobs in flight at that moment, not the length of the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from domain.events import EventDecodeError, decode_event, format_time
from projections.jobs import JOB_COLUMNS, FoldError, JobRow, fold_job
from projections.sql import ReadDb

_CHUNK = 500  # ids per `IN (...)`, well under SQLite's variable limit


async def seq_at(db: ReadDb, moment: datetime) -> int:
    """The last stream sequence of a job event that happened at or before `moment`."""
    when = format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    async with db.execute(
        "SELECT max(seq) FROM job_events WHERE occurred_at <= ?", (when,)
    ) as cursor:
        row = await cursor.fetchone()
    return int(row[0] or 0) if row else 0


async def jobs_as_of(db: ReadDb, seq: int) -> dict[str, JobRow]:
    """Every job's row as the projection held it right after event `seq` was applied."""
    rows: dict[str, JobRow] = {}
    sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE dispatched_seq <= ? AND last_seq <= ?"  # noqa: S608
    async with db.execute(sql, (seq, seq)) as cursor:
        async for record in cursor:
            row = cast(JobRow, dict(zip(JOB_COLUMNS, record, strict=True)))
            rows[row["id"]] = row
    async with db.execute(
        "SELECT id FROM jobs WHERE dispatched_seq <= ? AND last_seq > ?", (seq, seq)
    ) as cursor:
        changed = [job_id async for (job_id,) in cursor]
    for start in range(0, len(changed), _CHUNK):
        await _refold(db, changed[start : start + _CHUNK], seq, rows)
    return rows


async def _refold(db: ReadDb, ids: list[str], seq: int, rows: dict[str, JobRow]) -> None:
    """Fold the events of `ids` up to `seq` into `rows`."""
    marks = ", ".join("?" * len(ids))
    sql = (
        f"SELECT seq, document FROM job_events WHERE job_id IN ({marks}) AND seq <= ? ORDER BY seq"  # noqa: S608
    )
    async with db.execute(sql, (*ids, seq)) as cursor:
        async for event_seq, document in cursor:
            try:
                env = decode_event(document)
                rows[env.aggregate_id] = fold_job(rows.get(env.aggregate_id), env, event_seq).row
            except (EventDecodeError, FoldError):
                continue  # the live projection dead-lettered it as well
