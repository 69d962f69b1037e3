"""Our SQLite-dialect SQL as PostgreSQL statements (`adapters.postgres.dialect`), and the
typed PostgreSQL tables (`adapters.postgres.schema`): pure text, no database."""

from __future__ import annotations

from adapters.postgres.dialect import (
    LOCK_WRITERS,
    copy_statement,
    placeholders,
    staged,
    to_postgres,
)
from adapters.postgres.schema import PG_DDL, column


def test_placeholders_become_percent_s_and_percent_signs_are_doubled() -> None:
    assert placeholders("SELECT a FROM t WHERE b = ? AND c LIKE 'x%' LIMIT ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%' LIMIT %s"
    )
    assert placeholders("SELECT '?' AS q, \"a?\" FROM t WHERE x = ?") == (
        "SELECT '?' AS q, \"a?\" FROM t WHERE x = %s"
    )


def test_begin_immediate_takes_the_writers_lock_on_the_checkpoints() -> None:
    assert to_postgres("BEGIN IMMEDIATE") == (f"BEGIN; {LOCK_WRITERS}",)
    assert "checkpoints" in LOCK_WRITERS and "SHARE ROW EXCLUSIVE" in LOCK_WRITERS
    assert to_postgres("COMMIT") == ("COMMIT",)


def test_insert_or_replace_updates_every_column_but_the_key() -> None:
    (sql,) = to_postgres(
        "INSERT OR REPLACE INTO job_latency (job_id, phase, type, ms) VALUES (?, ?, ?, ?)"
    )
    assert sql == (
        "INSERT INTO job_latency (job_id, phase, type, ms) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (job_id, phase) DO UPDATE SET type = excluded.type, ms = excluded.ms"
    )


def test_insert_or_replace_of_key_columns_only_does_nothing_on_conflict() -> None:
    (sql,) = to_postgres("INSERT OR REPLACE INTO job_labels (job_id, key) VALUES (?, ?)")
    assert sql.endswith("ON CONFLICT (job_id, key) DO NOTHING")


def test_insert_or_ignore_does_nothing_on_conflict() -> None:
    (sql,) = to_postgres(
        "INSERT OR IGNORE INTO checkpoints (projection, last_seq, version) VALUES (?, 0, ?)"
    )
    assert sql == (
        "INSERT INTO checkpoints (projection, last_seq, version) VALUES (%s, 0, %s) "
        "ON CONFLICT DO NOTHING"
    )


def test_upserts_already_portable_are_left_alone() -> None:
    text = (
        "INSERT INTO job_stats (type, status, count) VALUES (?, ?, ?) "
        "ON CONFLICT (type, status) DO UPDATE SET count = job_stats.count + excluded.count"
    )
    assert to_postgres(text) == (text.replace("?", "%s"),)


def test_columns_get_types_and_text_sorts_by_bytes() -> None:
    assert column("jobs", "id") == 'id TEXT COLLATE "C"'
    assert column("jobs", "version") == "version BIGINT"
    assert column("brains", "version") == 'version TEXT COLLATE "C"'  # a software version
    assert column("jobs", "cost_usd") == "cost_usd DOUBLE PRECISION"
    assert column("job_events", "document") == "document BYTEA"
    assert column("checkpoints", "last_seq INTEGER NOT NULL") == "last_seq BIGINT NOT NULL"
    assert column("dead_letters", "document BLOB") == "document BYTEA"
    jobs = next(s for s in PG_DDL if s.startswith("CREATE TABLE IF NOT EXISTS jobs "))
    assert jobs.endswith("PRIMARY KEY (id))") and "dispatched_seq BIGINT" in jobs


def test_only_append_only_tables_are_copied() -> None:
    events = "INSERT OR REPLACE INTO job_events (seq, job_id) VALUES (?, ?)"
    assert copy_statement(events) == "COPY job_events (seq, job_id) FROM STDIN"
    assert copy_statement("INSERT OR REPLACE INTO jobs (id, status) VALUES (?, ?)") is None
    assert copy_statement("DELETE FROM job_stats WHERE count = 0") is None


def test_an_upsert_setting_the_new_values_is_kept_and_staged_as_a_replace() -> None:
    text = (
        "INSERT INTO jobs (id, type, status) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status"
    )
    assert to_postgres(text) == (text.replace("?", "%s"),)
    plan = staged(text)
    assert plan is not None and plan.keep_last and plan.keys == (0,)
    assert plan.merge == (
        "INSERT INTO jobs (id, type, status) SELECT id, type, status FROM baker_stage_jobs "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status"
    )
    # Rows of one job in a batch: as row by row, the first row's `type` (the insert) and
    # the last row's `status` (the updates after it) stay.
    rows = [("j", "a", "queued"), ("k", "c", "x"), ("j", "b", "running"), ("j", "b", "done")]
    assert plan.distinct(rows) == [("j", "a", "done"), ("k", "c", "x")]


def test_an_upsert_that_adds_to_the_stored_row_is_not_staged() -> None:
    adds = (
        "INSERT INTO job_stats (type, status, count) VALUES (?, ?, ?) "
        "ON CONFLICT (type, status) DO UPDATE SET count = job_stats.count + excluded.count"
    )
    assert staged(adds) is None  # folding its rows first would lose the sums
    crossed = (
        "INSERT INTO jobs (id, type, status) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.type"
    )
    assert staged(crossed) is None
