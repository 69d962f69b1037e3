"""The `jobs` projection: one row per job, every event in `job_events`, counts and latencies.

`fold_job` is a pure function of (current row, event): unit tests call it without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

import orjson

from domain.events import (
    DomainEvent,
    Envelope,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobDispatched,
    JobFailed,
    JobHeld,
    JobProgressed,
    JobQueued,
    JobReceived,
    JobResultRecorded,
    JobRetryScheduled,
    JobScheduled,
    JobStarted,
    TransitionRejected,
    format_time,
)
from projections.agent import AGENT_TYPES, UsageRecord, fold_agent

TERMINAL = ("completed", "failed", "cancelled")


class JobRow(TypedDict):
    id: str
    type: str | None
    status: str
    attempt: int
    worker_id: str | None
    progress: str | None
    cancel_requested: int
    result: str | None  # JSON
    error: str | None
    failure_reason: str | None
    timeout_seconds: int | None
    payload: str | None  # JSON, secrets masked
    warnings: str | None  # JSON list
    trace_id: str | None
    dispatched_seq: int
    dispatched_at: str | None
    received_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str
    duration_ms: int | None
    rejected: int
    version: int
    last_seq: int
    # Agent usage (projections.agent.AgentColumns), last so `id` stays the first column.
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    steps: int
    labels: str | None  # JSON object (DESIGN §11); also one `job_labels` row per label
    # Job control (DESIGN §11), last for the same reason.
    run_at: str | None  # a delayed job's start time
    retry_at: str | None  # when a retrying job runs again
    retries: int  # retries scheduled so far
    concurrency_key: str | None  # DESIGN §11: at most `concurrency_limit` of it at once
    concurrency_limit: int | None
    wait_reason: str | None  # why a queued job waits (its concurrency key is at its limit)


JOB_COLUMNS: tuple[str, ...] = tuple(JobRow.__annotations__)
# Set by `JobDispatched` and by nothing after it (`fold_job` refuses a second dispatch): a
# row's later writes leave them, and the index on `dispatched_seq`, as they are.
JOB_SET_AT_DISPATCH: tuple[str, ...] = ("type", "dispatched_seq")


class FoldError(ValueError):
    """An event the projection cannot apply (it goes to `dead_letters`)."""


@dataclass
class JobChange:
    row: JobRow
    latencies: list[tuple[str, int]] = field(default_factory=list)  # (phase, ms)
    usage: UsageRecord | None = None  # a model call's addition to `job_usage`


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _ms(start: str | None, end: str) -> int | None:
    if start is None:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0, int(delta.total_seconds() * 1000))


def new_row(env: Envelope, seq: int, data: JobDispatched) -> JobRow:
    at = format_time(env.occurred_at)
    return JobRow(
        id=env.aggregate_id, type=data.job_type, status="dispatched", attempt=0, worker_id=None,
        progress=None, cancel_requested=0, result=None, error=None, failure_reason=None,
        timeout_seconds=data.timeout_seconds, payload=_json(data.payload),
        warnings=_json(data.warnings) if data.warnings else None, trace_id=env.trace_id,
        dispatched_seq=seq, dispatched_at=at, received_at=None, started_at=None,
        finished_at=None, updated_at=at, duration_ms=None, rejected=0, version=env.version,
        last_seq=seq, input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0,
        cost_usd=0.0, steps=0, labels=_json(data.labels) if data.labels else None,
        run_at=None, retry_at=None, retries=0, concurrency_key=data.concurrency_key,
        concurrency_limit=data.concurrency_limit, wait_reason=None,
    )  # fmt: skip


def fold_job(row: JobRow | None, env: Envelope, seq: int) -> JobChange:
    """The job's row after `env` (stored at stream sequence `seq`)."""
    data = env.data
    if row is None:
        if not isinstance(data, JobDispatched):
            raise FoldError(f"{env.type} for job {env.aggregate_id}, which was never dispatched")
        return JobChange(new_row(env, seq, data))
    if isinstance(data, JobDispatched):
        raise FoldError(f"job {env.aggregate_id} dispatched twice")
    at = format_time(env.occurred_at)
    new: JobRow = {**row, "updated_at": at, "version": env.version, "last_seq": seq}
    change = JobChange(new)
    if isinstance(data, AGENT_TYPES):
        status, change.usage = fold_agent(
            new, new["status"], data, env.aggregate_id, str(new["type"]), env.occurred_at
        )
        new["status"] = status
    else:
        _apply(new, data, at, change)
    return change


def _apply(row: JobRow, data: DomainEvent, at: str, change: JobChange) -> None:
    if isinstance(data, JobReceived):
        _begin(row, "received", data.attempt, data.worker_id)
        if row["received_at"] is None:
            change.latencies.append(("dispatched_to_received", _ms(row["dispatched_at"], at) or 0))
        row["received_at"] = at
    elif isinstance(data, JobStarted):
        _begin(row, "running", data.attempt, data.worker_id)
        row["progress"] = data.progress
        if row["started_at"] is None and row["received_at"] is not None:
            change.latencies.append(("received_to_running", _ms(row["received_at"], at) or 0))
        row["started_at"] = at
    elif isinstance(data, JobProgressed):
        row["progress"] = data.progress
    elif isinstance(data, JobCompleted | JobFailed | JobCancelled):
        _finish(row, data, at, change)
    elif isinstance(data, JobResultRecorded):
        row["result"] = _json(data.result)
        row["error"] = data.error or row["error"]
        row["duration_ms"] = data.duration_ms or row["duration_ms"]
    elif isinstance(data, JobCancelRequested):
        row["cancel_requested"] = 1
    elif isinstance(data, TransitionRejected):
        row["rejected"] += 1
    elif isinstance(data, JobScheduled | JobRetryScheduled | JobQueued | JobHeld):
        _timing(row, data)
    else:
        raise FoldError(f"{type(data).__name__} is not a job event")


def _timing(row: JobRow, data: JobScheduled | JobRetryScheduled | JobQueued | JobHeld) -> None:
    if isinstance(data, JobHeld):
        row["wait_reason"] = (
            f"concurrency key '{data.concurrency_key}' is at its limit "
            f"({data.concurrency_limit} at once)"
        )
    elif isinstance(data, JobScheduled):
        row["status"] = "scheduled"
        row["run_at"] = format_time(data.run_at)
    elif isinstance(data, JobRetryScheduled):
        row["status"] = "retrying"
        row["retries"] += 1
        row["retry_at"] = None if data.retry_at is None else format_time(data.retry_at)
        row["error"] = data.error  # the last attempt's error, shown while it waits
        row["failure_reason"] = data.reason
    else:
        row["status"] = "dispatched"
        row["wait_reason"] = None


def _begin(row: JobRow, status: str, attempt: int, worker_id: str | None) -> None:
    row["status"] = status
    row["attempt"] = attempt
    row["worker_id"] = worker_id


def _finish(
    row: JobRow, data: JobCompleted | JobFailed | JobCancelled, at: str, change: JobChange
) -> None:
    if row["started_at"] is not None:
        change.latencies.append(("running_to_terminal", _ms(row["started_at"], at) or 0))
    row["finished_at"] = at
    row["worker_id"] = data.worker_id or row["worker_id"]
    if isinstance(data, JobCompleted):
        row["status"] = "completed"
        row["result"] = _json(data.result)
        row["duration_ms"] = data.duration_ms
    elif isinstance(data, JobFailed):
        row["status"] = "failed"
        row["error"] = data.error
        row["failure_reason"] = data.reason
        row["duration_ms"] = data.duration_ms
    else:
        row["status"] = "cancelled"
        row["error"] = data.detail


LABEL_COLUMNS = ("job_id", "key", "value")


def label_rows(row: JobRow) -> list[tuple[str, str, str]]:
    """The `job_labels` rows of a job (its labels never change after `JobDispatched`)."""
    labels: dict[str, str] = orjson.loads(row["labels"]) if row["labels"] else {}
    return [(row["id"], key, value) for key, value in labels.items()]


EVENT_COLUMNS = (
    "seq", "job_id", "version", "type", "occurred_at", "worker_id", "attempt", "trace_id",
    "document",
)  # fmt: skip


def event_row(env: Envelope, seq: int, document: bytes, at: str) -> tuple[Any, ...]:
    """A `job_events` row: searchable columns plus the whole stored event."""
    data = env.data
    return (
        seq,
        env.aggregate_id,
        env.version,
        env.type,
        at,
        getattr(data, "worker_id", None),
        getattr(data, "attempt", None),
        env.trace_id,
        document,
    )
