"""Point in time: the jobs as they were at a stream sequence, folded from `job_events`."""

from __future__ import annotations

from datetime import UTC, datetime

import aiosqlite

from domain.events import EventDecodeError, decode_event, format_time
from projections.jobs import FoldError, JobRow, fold_job


async def seq_at(db: aiosqlite.Connection, moment: datetime) -> int:
    """The last stream sequence of a job event that happened at or before `moment`."""
    when = format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    async with db.execute(
        "SELECT max(seq) FROM job_events WHERE occurred_at <= ?", (when,)
    ) as cursor:
        row = await cursor.fetchone()
    return int(row[0] or 0) if row else 0


async def jobs_as_of(db: aiosqlite.Connection, seq: int) -> dict[str, JobRow]:
    """Every job's row as the projection held it right after event `seq` was applied."""
    rows: dict[str, JobRow] = {}
    async with db.execute(
        "SELECT seq, document FROM job_events WHERE seq <= ? ORDER BY seq", (seq,)
    ) as cursor:
        async for event_seq, document in cursor:
            try:
                env = decode_event(document)
                rows[env.aggregate_id] = fold_job(rows.get(env.aggregate_id), env, event_seq).row
            except (EventDecodeError, FoldError):
                continue  # the live projection dead-lettered it as well
    return rows
