"""Events: every type round-trips through the stored form; old schemas upcast."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.events import (
    DomainEvent,
    Envelope,
    EventDecodeError,
    JobFailed,
    JobReceived,
    decode_event,
    encode_event,
    event_types,
    to_document,
)

NOW = datetime(2026, 11, 22, 10, 30, 15, 123456, tzinfo=UTC)
SAMPLES: dict[str, dict[str, Any]] = {
    "TransitionRejected": {
        "from_state": "completed",
        "attempted": "running",
        "reason": "terminal",
        "detail": {"attempt": 2},
    },
    "JobDispatched": {
        "job_type": "http",
        "payload": {"url": "https://x"},
        "timeout_seconds": 30,
        "reply_to": "baker.jobs.status.job-1",
        "created_at": NOW,
        "warnings": ["w"],
    },
    "JobReceived": {"worker_id": "worker-0a1b2c3d", "attempt": 2},
    "JobStarted": {"worker_id": "worker-0a1b2c3d", "attempt": 1, "progress": "starting"},
    "JobProgressed": {"worker_id": "w", "attempt": 1, "progress": "50%"},
    "JobCompleted": {
        "worker_id": "w",
        "attempt": 1,
        "result": {"exitCode": 0, "stdout": "hi\n"},
        "duration_ms": 12,
    },
    "JobResultRecorded": {"result": [1, 2], "error": None, "duration_ms": 3},
    "JobFailed": {"reason": "max_deliveries", "error": "gave up", "attempt": 3},
    "JobCancelRequested": {"reason": "operator"},
    "JobCancelled": {"worker_id": "w", "detail": "killed"},
    "JobScheduled": {"run_at": datetime(2026, 1, 1, tzinfo=UTC)},
    "JobRetryScheduled": {
        "attempt": 2,
        "delay_seconds": 1.5,
        "retry_at": datetime(2026, 1, 1, tzinfo=UTC),
        "reason": "error",
        "error": "exit 1",
    },
    "JobQueued": {"attempt": 2, "cause": "retry"},
    "JobHeld": {"concurrencyKey": "tenant-a", "concurrencyLimit": 2, "attempt": 1},
    "AgentModelCalled": {
        "attempt": 1,
        "step": 1,
        "model": "claude-sonnet-4-5",
        "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "command", "input": {}}],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_tokens": 0,
            "cache_write_tokens": 2,
        },
        "cost_usd": 0.0001,
        "duration_ms": 900,
    },
    "AgentToolCalled": {
        "attempt": 1,
        "step": 2,
        "tool_use_id": "toolu_1",
        "tool": "command",
        "input": {"command": "ls"},
    },
    "AgentToolReturned": {
        "attempt": 1,
        "step": 3,
        "tool_use_id": "toolu_1",
        "output": "{}",
        "is_error": True,
        "duration_ms": 4,
    },
    "AgentApprovalRequested": {
        "attempt": 1,
        "step": 2,
        "tool_use_id": "toolu_1",
        "tool": "command",
        "input": {"command": "ls"},
    },
    "AgentApprovalGranted": {"tool_use_id": "toolu_1", "note": "fine", "by": "ops"},
    "AgentApprovalDenied": {"tool_use_id": "toolu_1", "note": "no", "by": "ops"},
    "JobBudgetExceeded": {"limit": "maxCostUsd", "allowed": 1.0, "used": 0.9, "projected": 1.2},
    "ScheduleCreated": {
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "created_at": NOW,
        "job": {"type": "command", "payload": {"command": "df -h"}},
    },
    "SchedulePaused": {"reason": "maintenance"},
    "ScheduleResumed": {"at": NOW},
    "ScheduleDeleted": {"reason": "not needed"},
    "ScheduleFired": {"slot": NOW, "job_id": "job-0123456789abcdef", "missed": 2},
    "TaskLaunched": {
        "goal": "g",
        "mode": "script",
        "toolbox": "tb",
        "timeout_seconds": 1800,
        "launcher": "local",
        "deadline_at": NOW,
    },
    "TaskStarted": {"runner_id": "r-1"},
    "TaskProgressed": {"message": "m", "kind": "milestone"},
    "TaskCompleted": {"result": "done", "duration_ms": 5},
    "TaskFailed": {"error": "e", "duration_ms": 1},
    "TaskTimedOut": {"timeout_seconds": 60},
    "TaskCancelled": {"reason": "r"},
    "ExtensionAnnounced": {
        "name": "weather",
        "version": "1.0.0",
        "description": "d",
        "mcp_url": "http://ext/mcp",
        "tools": [{"name": "forecast"}],
    },
    "ExtensionToolsDiscovered": {"tools": [{"name": "t", "inputSchema": {}}]},
    "ExtensionWentOffline": {"last_seen": NOW, "missed_heartbeats": 3},
    "ExtensionCameOnline": {},
    "ExtensionDeregistered": {"reason": "shutdown"},
    "ServiceUp": {"service": "worker", "instance": "worker-1", "version": "0.1.0"},
    "ServiceDown": {"reason": "no heartbeat for 90s", "last_seen": NOW},
    "BrainStarted": {"role": "pending", "version": "2.0.0"},
    "BrainActivated": {"generation": 4, "fresh_start": True},
    "BrainDrainStarted": {"handoff_id": "handoff-1"},
    "BrainResumed": {"handoff_id": "handoff-1", "reason": "aborted"},
    "BrainShutDown": {"reason": "handoff completed"},
    "HandoffRequested": {
        "to_instance": "brain-b",
        "to_version": "2",
        "from_instance": "brain-a",
        "generation": 5,
    },
    "HandoffDrainStarted": {"from_instance": "brain-a", "from_version": "1"},
    "HandoffCompleted": {"generation": 5},
    "HandoffAborted": {"reason": "timeout"},
    "QueuePaused": {"by": "ops", "reason": "maintenance"},
    "QueueResumed": {"by": "ops"},
}


def envelope(event: DomainEvent, version: int = 1) -> Envelope:
    agg = event.aggregate or "job"
    return Envelope(
        "3f0c2a8e-1d3b-4c5e-8f9a-0b1c2d3e4f50",
        agg,
        f"{agg}-1",
        version,
        NOW,
        event,
        "trace-1",
        "cause-1",
    )


def test_every_registered_type_has_a_sample() -> None:
    assert set(event_types()) == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_event_type_round_trips(name: str) -> None:
    event = event_types()[name](**SAMPLES[name])
    env = envelope(event, version=7)
    back = decode_event(encode_event(env))
    assert back == env
    assert back.data.model_dump() == event.model_dump()


def test_stored_form_is_the_contract_of_design_4() -> None:
    env = envelope(event_types()["JobReceived"](worker_id="w", attempt=1))
    doc = json.loads(encode_event(env))
    assert doc == {
        "eventId": "3f0c2a8e-1d3b-4c5e-8f9a-0b1c2d3e4f50",
        "type": "JobReceived",
        "aggregate": "job",
        "aggregateId": "job-1",
        "version": 1,
        "occurredAt": "2026-11-22T10:30:15.123456Z",
        "schema": 2,
        "data": {"workerId": "w", "attempt": 1},
        "traceId": "trace-1",
        "causationId": "cause-1",
    }


@given(
    progress=st.text(max_size=200),
    attempt=st.integers(min_value=1, max_value=10_000),
    worker=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    version=st.integers(min_value=1, max_value=2**40),
)
def test_arbitrary_progress_events_round_trip(
    progress: str, attempt: int, worker: str | None, version: int
) -> None:
    event = event_types()["JobProgressed"](progress=progress, attempt=attempt, worker_id=worker)
    assert decode_event(encode_event(envelope(event, version))).data == event


def _stored(type_name: str, schema: int, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {"eventId": "e", "type": type_name, "aggregate": "job", "aggregateId": "job-1",
         "version": 2, "occurredAt": "2025-01-01T00:00:00Z", "schema": schema, "data": data}
    ).encode()  # fmt: skip


def test_schema_1_job_received_upcasts_to_first_attempt() -> None:
    env = decode_event(_stored("JobReceived", 1, {"workerId": "w"}))
    assert env.data == JobReceived(worker_id="w", attempt=1)
    assert env.schema == 2
    assert to_document(env)["schema"] == 2


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("job job-1 exceeded max deliveries", "max_deliveries"),
        ("job stuck in 'running' for over 120s — reaped", "stuck"),
        ("request timed out", "timeout"),
        ("exit code 2", "error"),
    ],
)
def test_schema_1_job_failed_upcasts_with_a_reason(error: str, reason: str) -> None:
    env = decode_event(_stored("JobFailed", 1, {"error": error}))
    assert env.data == JobFailed(reason=reason, error=error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{oops", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (_stored("Nope", 1, {}), "unknown event type 'Nope'"),
        (_stored("JobReceived", 3, {"attempt": 1}), "schema 3 is unknown"),
        (_stored("JobReceived", 2, {"attempt": 0}), "data.attempt"),
        (
            _stored("JobReceived", 2, {"attempt": 1}).replace(b'"version": 2', b'"version": "2"'),
            "version",
        ),
        (_stored("TaskStarted", 1, {}), "aggregate: 'job' is wrong for TaskStarted"),
        (
            _stored("JobCancelRequested", 1, {}).replace(b"2025-01-01T00:00:00Z", b"yesterday"),
            "occurredAt",
        ),
    ],
)
def test_unreadable_events_raise_an_error_naming_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        decode_event(raw)


def test_client_times_are_read_as_utc() -> None:
    from domain.events import parse_time  # noqa: PLC0415

    assert parse_time("2026-12-01T10:00:00") == parse_time("2026-12-01T11:00:00+01:00")
    assert parse_time("2026-12-01T10:00:00Z").utcoffset() == timedelta(0)
    for bad in ("yesterday", "0001-01-01T00:00:00+05:00"):
        with pytest.raises(ValueError):
            parse_time(bad)
