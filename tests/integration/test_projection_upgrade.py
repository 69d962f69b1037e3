"""A read model written by the jobs projection's version 1 (no usage columns, no `job_usage`)
is rebuilt blue-green on start into the current tables, and verify passes afterwards. Real
SQLite files, in-memory event log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from adapters.eventstore import NEW, InMemoryEventStore
from adapters.sqlite import connected, current_target
from domain.events import Envelope
from projections import queries
from projections.usage import UsageFilter, usage
from services.projector import Projector
from services.rebuild import verify
from tests.unit.test_projection_agent import T0, agent_job

NEW_COLUMNS = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd",
    "steps",
)  # fmt: skip


async def test_a_version_1_read_model_is_rebuilt_with_the_usage_columns(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    events = [Envelope(f"e{v}", "job", "job-1", v, T0, e) for v, e in enumerate(agent_job(), 1)]
    await store.append("job", "job-1", events, NEW)
    db = tmp_path / "readmodel.db"
    projector = Projector(store, db)
    await projector.open()
    await projector.apply([i async for i in store.read_all(1, include_bad=True)])
    await projector.close()
    first = current_target(db)
    with sqlite3.connect(first) as conn:  # as version 1 left it
        for column in NEW_COLUMNS:
            conn.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
        conn.execute("DROP TABLE job_usage")
        conn.execute("UPDATE checkpoints SET version = 1 WHERE projection = 'jobs'")

    restarted = Projector(store, db)
    await restarted.open()
    await restarted.close()
    assert current_target(db) != first
    async with connected(db, readonly=True) as reader:
        job = await queries.get_job(reader, "job-1")
        rows = await usage(reader, UsageFilter("model"))
    assert job is not None
    assert (job["inputTokens"], job["outputTokens"], job["costUsd"], job["steps"]) == (
        230, 30, 0.0174, 4,
    )  # fmt: skip
    assert [(r["key"], r["jobs"], r["calls"]) for r in rows] == [("claude-sonnet-4-5", 1, 2)]
    report = await verify(store, db)
    assert all(report.tables.values()), report
