"""Projection folds are pure: (row, event) -> row, called here without any database."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from domain import events as ev
from domain.events import DomainEvent, Envelope
from projections.jobs import JOB_SET_AT_DISPATCH, FoldError, JobRow, fold_job
from projections.system import fold_brain, fold_extension, fold_handoff, fold_service, fold_task

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def env(event: DomainEvent, version: int, seconds: float = 0, agg_id: str = "x-1") -> Envelope:
    aggregate = event.aggregate or "job"
    return Envelope(
        f"e{version}", aggregate, agg_id, version, T0 + timedelta(seconds=seconds), event, "trace-9"
    )


def set_at_dispatch(row: Mapping[str, object]) -> list[object]:
    return [row[c] for c in JOB_SET_AT_DISPATCH]


def run_job(*steps: tuple[DomainEvent, float]) -> tuple[JobRow, list[tuple[str, int]]]:
    row: JobRow | None = None
    lat: list[tuple[str, int]] = []
    for version, (event, at) in enumerate(steps, 1):
        change = fold_job(row, env(event, version, at, "job-1"), 100 + version)
        if row is not None:  # the read model's update leaves these columns as they were
            assert set_at_dispatch(change.row) == set_at_dispatch(row)
        row, lat = change.row, lat + change.latencies
    assert row is not None
    return row, lat


def test_a_job_row_follows_its_lifecycle_and_measures_its_phases() -> None:
    row, lat = run_job(
        (
            ev.JobDispatched(job_type="command", payload={"command": "echo hi"}, timeout_seconds=9),
            0,
        ),
        (ev.JobReceived(worker_id="w-1", attempt=1), 0.25),
        (ev.JobStarted(worker_id="w-1", attempt=1, progress="go"), 0.5),
        (ev.JobProgressed(worker_id="w-1", attempt=1, progress="half"), 1),
        (ev.JobCompleted(worker_id="w-1", attempt=1, result={"exitCode": 0}, duration_ms=600), 1.5),
    )
    assert row["status"] == "completed" and row["progress"] == "half"
    assert orjson.loads(row["result"] or "null") == {"exitCode": 0}
    assert (row["dispatched_seq"], row["last_seq"], row["version"]) == (101, 105, 5)
    assert row["trace_id"] == "trace-9" and row["timeout_seconds"] == 9
    assert row["finished_at"] == "2026-11-22T12:00:01.500000Z"
    assert lat == [
        ("dispatched_to_received", 250),
        ("received_to_running", 250),
        ("running_to_terminal", 1000),
    ]


def test_failures_cancels_and_rejections_are_recorded() -> None:
    row, _ = run_job(
        (ev.JobDispatched(job_type="http", payload={}), 0),
        (ev.JobCancelRequested(reason="op"), 1),
        (ev.TransitionRejected(from_state="dispatched", attempted="completed", reason="r"), 2),
        (ev.JobFailed(reason="max_deliveries", error="gave up"), 3),
    )
    assert (row["status"], row["failure_reason"], row["error"]) == (
        "failed",
        "max_deliveries",
        "gave up",
    )
    assert row["cancel_requested"] == 1 and row["rejected"] == 1


def test_a_redelivery_moves_the_attempt_and_worker() -> None:
    row, lat = run_job(
        (ev.JobDispatched(job_type="command", payload={}), 0),
        (ev.JobReceived(worker_id="w-1", attempt=1), 1),
        (ev.JobReceived(worker_id="w-2", attempt=2), 70),
    )
    assert (row["attempt"], row["worker_id"]) == (2, "w-2")
    assert lat == [("dispatched_to_received", 1000)]  # measured once, on the first receipt


@pytest.mark.parametrize(
    ("row", "event", "message"),
    [
        (None, ev.JobStarted(attempt=1), "never dispatched"),
        (None, ev.TaskStarted(), "task"),
    ],
)
def test_impossible_events_raise_fold_errors(row: Any, event: DomainEvent, message: str) -> None:
    fold = fold_job if event.aggregate == "job" else fold_task
    with pytest.raises(FoldError, match=message):
        fold(row, env(event, 1), 1)


def test_a_job_dispatched_twice_is_a_fold_error() -> None:
    row, _ = run_job((ev.JobDispatched(job_type="command", payload={}), 0))
    with pytest.raises(FoldError, match="dispatched twice"):
        fold_job(row, env(ev.JobDispatched(job_type="command", payload={}), 2), 3)


def test_task_extension_service_brain_and_handoff_rows() -> None:
    task = fold_task(None, env(ev.TaskLaunched(goal="g", mode="script", timeout_seconds=60), 1), 1)
    task = fold_task(task, env(ev.TaskProgressed(message="half"), 2, 1), 2)
    task = fold_task(task, env(ev.TaskTimedOut(timeout_seconds=60), 3, 61), 3)
    assert (task["status"], task["progress"], task["error"]) == (
        "timed_out",
        "half",
        "timed out after 60s",
    )

    ext = fold_extension(
        None,
        env(ev.ExtensionAnnounced(name="w", version="1", mcp_url="u", tools=[{"name": "t"}]), 1),
        1,
    )
    ext = fold_extension(ext, env(ev.ExtensionWentOffline(missed_heartbeats=3), 2, 90), 2)
    assert (ext["status"], ext["reason"], orjson.loads(ext["tools"])) == (
        "offline",
        "missed 3 heartbeats",
        [{"name": "t"}],
    )

    svc = fold_service(None, env(ev.ServiceUp(service="worker", instance="w-1"), 1), 1)
    svc = fold_service(svc, env(ev.ServiceDown(reason="silent"), 2, 5), 2)
    assert (svc["status"], svc["reason"], svc["since"]) == (
        "down",
        "silent",
        "2026-11-22T12:00:05.000000Z",
    )

    brain = fold_brain(None, env(ev.BrainStarted(role="pending", version="2"), 1), 1)
    brain = fold_brain(brain, env(ev.BrainActivated(generation=4), 2), 2)
    assert (brain["status"], brain["generation"]) == ("active", 4)

    h = fold_handoff(
        None, env(ev.HandoffRequested(to_instance="b", to_version="2", generation=5), 1), 1
    )
    h = fold_handoff(h, env(ev.HandoffAborted(reason="timeout"), 2, 3), 2)
    assert (h["status"], h["reason"], h["generation"]) == ("aborted", "timeout", 5)
