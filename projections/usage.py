"""The usage read model's query: tokens and cost grouped by model, day or job type
(DESIGN §10, `GET /api/usage`, `baker usage`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from domain.events import parse_time
from projections.agent import utc_day
from projections.sql import ReadDb

GroupBy = Literal["model", "day", "type"]
GROUPS: Final[tuple[GroupBy, ...]] = ("model", "day", "type")


@dataclass(frozen=True)
class UsageFilter:
    group_by: GroupBy = "model"
    since: str | None = None  # a UTC date (YYYY-MM-DD), inclusive
    until: str | None = None  # inclusive


def usage_day(text: str | None, name: str) -> str | None:
    """A `since`/`until` given as a date or an ISO-8601 time, as the UTC day it falls on
    (usage is kept per day). `ValueError` naming `name` if it is neither."""
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        return utc_day(parse_time(text))
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a date or an ISO-8601 time") from None


async def usage(db: ReadDb, f: UsageFilter) -> list[dict[str, Any]]:
    """One row per model, day or type with distinct jobs, tokens, calls and cost; days oldest
    first, models and types by cost, highest first."""
    if f.group_by not in GROUPS:  # the column name goes into the SQL: only ours
        raise ValueError(f"groupBy: {f.group_by!r} is not one of {', '.join(GROUPS)}")
    order = "key" if f.group_by == "day" else "cost DESC, key"
    return await _select(db, f, f.group_by, f"GROUP BY key ORDER BY {order}")


async def usage_total(db: ReadDb, f: UsageFilter) -> dict[str, Any]:
    """The same sums over every row in the time range (`jobs`: distinct jobs overall)."""
    rows: list[dict[str, Any]] = await _select(db, f, "'total'", "")
    return rows[0]


async def _select(db: ReadDb, f: UsageFilter, key: str, tail: str) -> list[dict[str, Any]]:
    clauses = [(c, v) for c, v in (("day >= ?", f.since), ("day <= ?", f.until)) if v]
    where = " WHERE " + " AND ".join(c for c, _ in clauses) if clauses else ""
    sql = (
        f"SELECT {key} AS key, count(DISTINCT job_id), total(input_tokens),"  # noqa: S608
        " total(output_tokens), total(cache_read_tokens), total(cache_write_tokens),"
        f" total(calls), round(total(cost_usd), 6) AS cost FROM job_usage{where} {tail}"
    )
    async with db.execute(sql, [v for _, v in clauses]) as cursor:
        return [
            {
                "key": key, "jobs": jobs, "inputTokens": int(inp), "outputTokens": int(out),
                "cacheReadTokens": int(cread), "cacheWriteTokens": int(cwrite),
                "calls": int(calls), "costUsd": cost,
            }
            async for key, jobs, inp, out, cread, cwrite, calls, cost in cursor
        ]  # fmt: skip
