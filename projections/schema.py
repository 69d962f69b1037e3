"""Read-model tables, and which projection owns which tables and aggregates.

Bump a projection's `version` whenever its fold or tables change: the projector then rebuilds
it from the event log into a new database file and swaps it in (blue-green).
"""

from __future__ import annotations

from dataclasses import dataclass

from projections.agent import USAGE_COLUMNS, USAGE_KEY
from projections.jobs import EVENT_COLUMNS, JOB_COLUMNS, LABEL_COLUMNS
from projections.system import (
    BRAIN_COLUMNS,
    EXTENSION_COLUMNS,
    HANDOFF_COLUMNS,
    SERVICE_COLUMNS,
    TASK_COLUMNS,
)


@dataclass(frozen=True)
class ProjectionSpec:
    name: str
    version: int
    aggregates: frozenset[str]
    tables: tuple[str, ...]


PROJECTIONS: dict[str, ProjectionSpec] = {
    spec.name: spec
    for spec in (
        # jobs 2: the agent events (usage columns, `waiting`, the `job_usage` table).
        # jobs 3: labels (the `labels` column, the `job_labels` table).
        # jobs 4: delayed and retried jobs (`scheduled`, `retrying`, run_at/retry_at/retries).
        # jobs 5: concurrency keys (concurrency_key/limit, wait_reason).
        ProjectionSpec(
            "jobs",
            5,
            frozenset({"job"}),
            ("jobs", "job_events", "job_latency", "job_stats", "job_usage", "job_labels"),
        ),
        ProjectionSpec("tasks", 1, frozenset({"task"}), ("tasks",)),
        ProjectionSpec("extensions", 1, frozenset({"extension"}), ("extensions",)),
        ProjectionSpec("services", 1, frozenset({"service"}), ("services",)),
        ProjectionSpec("handoffs", 1, frozenset({"brain", "handoff"}), ("brains", "handoffs")),
    )
}

# Primary keys, also the order rows are compared in by `verify`.
KEYS: dict[str, tuple[str, ...]] = {
    "jobs": ("id",), "job_events": ("seq",), "job_latency": ("job_id", "phase"),
    "job_stats": ("type", "status"), "job_usage": USAGE_KEY,
    "job_labels": ("job_id", "key"), "tasks": ("id",),
    "extensions": ("id",), "services": ("id",), "brains": ("instance",), "handoffs": ("id",),
    "dead_letters": ("seq", "projection"), "checkpoints": ("projection",),
}  # fmt: skip


def _table(name: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)}, PRIMARY KEY ({', '.join(key)}))"
    )


DDL: tuple[str, ...] = (
    _table(
        "checkpoints",
        ("projection TEXT", "last_seq INTEGER NOT NULL", "version INTEGER NOT NULL"),
        KEYS["checkpoints"],
    ),
    _table(
        "dead_letters",
        ("seq INTEGER", "projection TEXT", "subject TEXT", "error TEXT NOT NULL", "document BLOB"),
        KEYS["dead_letters"],
    ),
    _table("jobs", JOB_COLUMNS, KEYS["jobs"]),
    "CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs (dispatched_seq)",
    "CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, dispatched_seq)",
    "CREATE INDEX IF NOT EXISTS jobs_by_type ON jobs (type, status, dispatched_seq)",
    _table("job_events", EVENT_COLUMNS, KEYS["job_events"]),
    "CREATE INDEX IF NOT EXISTS job_events_by_job ON job_events (job_id, version)",
    "CREATE INDEX IF NOT EXISTS job_events_by_type ON job_events (type, seq)",
    "CREATE INDEX IF NOT EXISTS job_events_by_worker ON job_events (worker_id, seq)",
    "CREATE INDEX IF NOT EXISTS job_events_by_time ON job_events (occurred_at)",
    _table("job_latency", ("job_id", "phase", "type", "ms INTEGER"), KEYS["job_latency"]),
    "CREATE INDEX IF NOT EXISTS job_latency_by_phase ON job_latency (type, phase, ms)",
    _table("job_stats", ("type", "status", "count INTEGER NOT NULL"), KEYS["job_stats"]),
    _table("job_usage", USAGE_COLUMNS, KEYS["job_usage"]),
    "CREATE INDEX IF NOT EXISTS job_usage_by_day ON job_usage (day)",
    _table("job_labels", LABEL_COLUMNS, KEYS["job_labels"]),
    "CREATE INDEX IF NOT EXISTS job_labels_by_value ON job_labels (key, value, job_id)",
    _table("tasks", TASK_COLUMNS, KEYS["tasks"]),
    _table("extensions", EXTENSION_COLUMNS, KEYS["extensions"]),
    _table("services", SERVICE_COLUMNS, KEYS["services"]),
    _table("brains", BRAIN_COLUMNS, KEYS["brains"]),
    _table("handoffs", HANDOFF_COLUMNS, KEYS["handoffs"]),
)

ALL_TABLES: tuple[str, ...] = tuple(KEYS)
