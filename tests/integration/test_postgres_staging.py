"""Many-row upserts on PostgreSQL (`adapters.postgres.dialect.staged`): COPY into a staging
table and one `INSERT ... SELECT ... ON CONFLICT`, or COPY straight in for tables whose rows
are nearly always new. Whatever the way, the table ends as SQLite's row-by-row
`INSERT OR REPLACE` / `INSERT OR IGNORE` leaves it: the last (REPLACE) or first (IGNORE) of
rows with one key, rows already there replaced or kept, the transaction still usable after a
straight COPY met a key that was there. A real PostgreSQL, a database of its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest

from adapters.postgres.connection import STAGE_FROM, PgWriteDb, search_path
from adapters.postgres.schema import PG_DDL
from projections.jobs import JOB_COLUMNS
from projections.schema import DDL
from tests.support.postgres import postgres_url

__all__ = ["postgres_url"]

LATENCY = "INSERT OR REPLACE INTO job_latency (job_id, phase, type, ms) VALUES (?, ?, ?, ?)"
LABELS = "INSERT OR IGNORE INTO job_labels (job_id, key, value) VALUES (?, ?, ?)"
TASKS = "INSERT OR REPLACE INTO tasks (id, goal, status) VALUES (?, ?, ?)"
JOBS = (  # as `projections.engine.JOBS_UPSERT`: type and dispatched_seq are set once
    "INSERT INTO jobs (id, type, status, dispatched_seq) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET status = excluded.status"
)


@pytest.fixture
def both(postgres_url: str) -> Iterator[tuple[PgWriteDb, sqlite3.Connection]]:
    pg = psycopg.connect(postgres_url, **search_path("staging"))
    pg.execute("CREATE SCHEMA staging")
    for statement in PG_DDL:
        pg.execute(statement)
    lite = sqlite3.connect(":memory:", isolation_level=None)
    for statement in DDL:
        lite.execute(statement)
    yield PgWriteDb(pg), lite
    pg.close()
    lite.close()


def run(both: tuple[PgWriteDb, sqlite3.Connection], sql: str, rows: Sequence[Any]) -> None:
    pg, lite = both
    for db in (pg, lite):
        db.execute("BEGIN")
        db.executemany(sql, rows)
        db.execute("COMMIT")


def table(both: tuple[PgWriteDb, sqlite3.Connection], name: str) -> list[Any]:
    pg, lite = both
    query = f"SELECT * FROM {name} ORDER BY 1, 2"
    mine = [tuple(r) for r in pg.execute(query)]
    assert mine == [tuple(r) for r in lite.execute(query)]
    return mine


def test_replace_keeps_the_last_row_of_a_key_and_replaces_stored_ones(both: Any) -> None:
    run(both, TASKS, [("t-1", "old", "launched"), ("t-9", "kept", "launched")])
    count = STAGE_FROM + 20
    run(both, TASKS, [(f"t-{i % 40}", f"goal {i}", "running") for i in range(count)])
    found = {r[0]: r for r in table(both, "tasks")}
    last_of_t1 = max(i for i in range(count) if i % 40 == 1)
    assert len(found) == 40 and found["t-1"][1] == f"goal {last_of_t1}"
    assert found["t-9"][1] != "kept"


def test_an_update_in_place_keeps_the_last_row_and_the_columns_it_does_not_set(
    both: Any,
) -> None:
    run(both, JOBS, [("j-1", "command", "queued", 1), ("j-50", "http", "queued", 2)])
    count = STAGE_FROM + 20
    rows = [(f"j-{i % 40}", "agent", f"status {i}", 100 + i) for i in range(count)]
    run(both, JOBS, rows)
    seq = JOB_COLUMNS.index("dispatched_seq")
    found = {r[0]: (r[1], r[2], r[seq]) for r in table(both, "jobs")}
    last_of_j1 = max(i for i in range(count) if i % 40 == 1)
    assert found["j-1"] == ("command", f"status {last_of_j1}", 1)  # its type and seq kept
    assert found["j-2"] == ("agent", f"status {max(i for i in range(count) if i % 40 == 2)}", 102)
    assert found["j-50"] == ("http", "queued", 2) and len(found) == 41


def test_ignore_keeps_the_first_row_of_a_key_and_stored_ones(both: Any) -> None:
    run(both, LABELS, [("job-1", "team", "stored")])
    rows = [(f"job-{i % 30}", "team", f"v{i}") for i in range(STAGE_FROM + 10)]
    run(both, LABELS, rows)
    found = {r[0]: r[2] for r in table(both, "job_labels")}
    assert found["job-1"] == "stored" and found["job-2"] == "v2" and len(found) == 30


def test_a_straight_copy_meeting_a_stored_key_falls_back_within_the_transaction(
    both: Any,
) -> None:
    run(both, LATENCY, [("job-5", "run", "command", 1)])
    rows = [(f"job-{i}", "run", "command", 100 + i) for i in range(STAGE_FROM)]
    pg, lite = both
    for db in (pg, lite):
        db.execute("BEGIN")
        db.executemany(LATENCY, rows)
        db.executemany(LATENCY, [(f"job-{i}", "queue", "command", i) for i in range(STAGE_FROM)])
        db.execute("COMMIT")
    found = {(r[0], r[1]): r[3] for r in table(both, "job_latency")}
    assert found[("job-5", "run")] == 105 and len(found) == 2 * STAGE_FROM


def test_a_staging_table_made_in_a_rolled_back_transaction_is_made_again(both: Any) -> None:
    pg, _lite = both
    rows = [(f"t-{i}", "goal", "running") for i in range(STAGE_FROM)]
    pg.execute("BEGIN")
    pg.executemany(TASKS, rows)  # makes the staging table, then the batch is abandoned
    pg.execute("ROLLBACK")
    run(both, TASKS, rows)
    assert len(table(both, "tasks")) == STAGE_FROM
