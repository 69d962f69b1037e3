"""The job lifecycle of DESIGN §5, one rule at a time."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.commands import DispatchJob, FailJob, RecordStatus, Rejected, RequestCancel
from domain.events import DomainEvent
from domain.lifecycle import decide, fold
from domain.lifecycle.job import JobState, _bump
from domain.specs import parse_job_spec

SPEC = parse_job_spec({"type": "command", "payload": {"command": "uptime"}})


def run(*commands: Any) -> tuple[JobState, list[DomainEvent | Rejected]]:
    """Apply commands in order from a fresh job; return the state and what each decided."""
    events: list[DomainEvent] = []
    outcomes: list[DomainEvent | Rejected] = []
    for cmd in (DispatchJob(spec=SPEC), *commands):
        decision = decide("job", fold("job", events), cmd)
        if isinstance(decision, Rejected):
            outcomes.append(decision)
        else:
            events += decision
            outcomes += decision
    return fold("job", events), outcomes


def types(outcomes: list[Any]) -> list[str]:
    return [type(o).__name__ for o in outcomes]


def test_the_happy_path() -> None:
    state, out = run(
        RecordStatus(status="received", worker_id="w", attempt=1),
        RecordStatus(status="running", attempt=1),
        RecordStatus(status="running", attempt=1, progress="half"),
        RecordStatus(status="completed", result={"ok": True}),
    )
    assert types(out) == [
        "JobDispatched",
        "JobReceived",
        "JobStarted",
        "JobProgressed",
        "JobCompleted",
    ]
    assert (state.status, state.version, state.has_result) == ("completed", 5, True)


def test_a_minimal_worker_sending_running_then_completed_is_valid() -> None:
    state, out = run(RecordStatus(status="running"), RecordStatus(status="completed"))
    assert types(out) == ["JobDispatched", "JobStarted", "JobCompleted"]
    assert state.attempt == 1


def test_a_duplicate_of_the_current_status_is_a_no_op() -> None:
    _, out = run(
        RecordStatus(status="received", attempt=1),
        RecordStatus(status="received", attempt=1),
        RecordStatus(status="running", attempt=1, progress="p"),
        RecordStatus(status="running", attempt=1, progress="p"),
    )
    assert types(out) == ["JobDispatched", "JobReceived", "JobStarted"]


def test_redelivery_needs_a_higher_attempt() -> None:
    state, out = run(
        RecordStatus(status="running", attempt=1),
        RecordStatus(status="received", attempt=2, worker_id="w2"),
        RecordStatus(status="running", attempt=2),
        RecordStatus(status="received", attempt=2),
    )
    assert types(out) == ["JobDispatched", "JobStarted", "JobReceived", "JobStarted", "Rejected"]
    assert state.attempt == 2


def test_reports_from_an_earlier_attempt_are_rejected_as_stale() -> None:
    _, out = run(
        RecordStatus(status="received", attempt=2),
        RecordStatus(status="running", attempt=1, progress="old worker"),
        RecordStatus(status="failed", attempt=1, error="old worker died"),
    )
    assert types(out)[-2:] == ["Rejected", "Rejected"]
    assert "stale report from attempt 1" in out[-1].reason  # type: ignore[union-attr]


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
def test_terminal_states_absorb(terminal: str) -> None:
    state, out = run(
        RecordStatus(status="running"),
        RecordStatus(status=terminal),  # type: ignore[arg-type]
        RecordStatus(status=terminal),  # type: ignore[arg-type]
        RecordStatus(status="running", attempt=5),
        RecordStatus(status="received", attempt=9),
        FailJob(reason="stuck", error="late"),
        RequestCancel(),
    )
    assert state.status == terminal
    assert types(out)[3:] == ["Rejected"] * 4
    assert all("terminal states absorb" in o.reason for o in out[3:])  # type: ignore[union-attr]


def test_completed_needs_running_first() -> None:
    _, out = run(RecordStatus(status="completed"))
    assert isinstance(out[-1], Rejected)
    assert out[-1].reason == "illegal transition dispatched -> completed"


def test_any_active_state_may_fail_or_be_cancelled() -> None:
    for before in ([], [RecordStatus(status="received")], [RecordStatus(status="running")]):
        assert run(*before, FailJob(reason="max_deliveries", error="x"))[0].status == "failed"
        assert run(*before, RecordStatus(status="cancelled"))[0].status == "cancelled"


def test_cancel_request_is_recorded_once_and_keeps_the_state() -> None:
    state, out = run(RecordStatus(status="running"), RequestCancel("op"), RequestCancel("again"))
    assert types(out) == ["JobDispatched", "JobStarted", "JobCancelRequested"]
    assert state.status == "running" and state.cancel_requested


def test_a_result_after_a_bare_completed_status_is_recorded_once() -> None:
    state, out = run(
        RecordStatus(status="running"),
        RecordStatus(status="completed"),
        RecordStatus(status="completed", result="42", source="result"),
        RecordStatus(status="completed", result="42", source="result"),
    )
    assert types(out)[-2:] == ["JobCompleted", "JobResultRecorded"]
    assert state.has_result


def test_failure_reason_comes_from_the_brain_or_defaults_to_error() -> None:
    _, out = run(FailJob(reason="dispatch_failed", error="no stream"))
    assert out[-1].reason == "dispatch_failed"  # type: ignore[union-attr]
    _, out = run(RecordStatus(status="failed"))
    assert out[-1].reason == "error" and "without an error" in out[-1].error  # type: ignore[union-attr]


def test_status_for_a_job_that_does_not_exist_is_rejected() -> None:
    decision = decide("job", JobState(), RecordStatus(status="running"))
    assert isinstance(decision, Rejected) and decision.reason == "no such job"


def test_a_repeated_dispatch_is_a_no_op() -> None:
    _, out = run(DispatchJob(spec=SPEC))
    assert types(out) == ["JobDispatched"]


def test_a_command_of_another_aggregate_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="job command, not a task one"):
        decide("task", JobState(), RequestCancel())


def test_every_event_carries_every_other_field_over() -> None:
    """The folds build the next state field by field: none may be dropped or reset."""
    state = JobState(
        status="running", version=7, job_type="http", attempt=3, worker_id="worker-1",
        progress="half", cancel_requested=True, has_result=True, timeout_seconds=42, steps=5,
        pending=("toolu_1",), open_call="toolu_1", awaiting="toolu_1", approval_timeout=60,
        retry={"maxAttempts": 3}, retries=1, retry_attempt=3,
        due_at=datetime(2026, 1, 1, tzinfo=UTC), concurrency_key="tenant-a",
        concurrency_limit=2, held=2,
    )  # fmt: skip
    # every field away from its default, so one that `_bump` forgot would show
    assert all(getattr(state, f.name) != f.default for f in fields(JobState))
    assert _bump(state) == replace(state, version=8)
    assert _bump(state, status="completed", progress=None) == replace(
        state, version=8, status="completed", progress=None
    )
