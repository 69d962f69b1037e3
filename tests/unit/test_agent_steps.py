"""Which step of an agent job may follow which (DESIGN §10), decided by the job machine."""

from __future__ import annotations

from typing import Any

from domain.commands import (
    AnswerApproval,
    DispatchJob,
    RecordStatus,
    RecordStep,
    Rejected,
    RequestCancel,
)
from domain.events import DomainEvent, JobBudgetExceeded, JobFailed
from domain.lifecycle import decide, fold
from domain.specs import parse_job_spec

SPEC = parse_job_spec({"type": "agent", "payload": {"prompt": "look around"}})
STARTED = (RecordStatus(status="received", attempt=1), RecordStatus(status="running", attempt=1))


def tool_use_reply(*ids: str) -> tuple[dict[str, Any], ...]:
    return (
        {"type": "text", "text": "let me look"},
        *(
            {"type": "tool_use", "id": i, "name": "command", "input": {"command": "ls"}}
            for i in ids
        ),
    )


def model(step: int, *uses: str, attempt: int = 1) -> RecordStep:
    content = tool_use_reply(*uses) if uses else ({"type": "text", "text": "done"},)
    stop = "tool_use" if uses else "end_turn"
    return RecordStep(attempt=attempt, step=step, kind="model", model="claude-sonnet-4-5",
                      stop_reason=stop, content=content, usage={"inputTokens": 10})  # fmt: skip


def call(step: int, use: str, attempt: int = 1) -> RecordStep:
    return RecordStep(attempt=attempt, step=step, kind="toolCall", tool_use_id=use, tool="command",
                      input={"command": "ls"})  # fmt: skip


def ret(step: int, use: str, attempt: int = 1) -> RecordStep:
    return RecordStep(attempt=attempt, step=step, kind="toolResult", tool_use_id=use, output="ok")


def run(*commands: Any) -> tuple[Any, list[DomainEvent | Rejected | None]]:
    """Apply commands from a fresh agent job; each outcome is the event, a rejection, or None
    for a no-op."""
    events: list[DomainEvent] = []
    outcomes: list[DomainEvent | Rejected | None] = []
    for cmd in (DispatchJob(spec=SPEC), *STARTED, *commands):
        decision = decide("job", fold("job", events), cmd)
        if isinstance(decision, Rejected):
            outcomes.append(decision)
        else:
            events += decision
            outcomes.append(decision[-1] if decision else None)
    return fold("job", events), outcomes[3:]


def names(outcomes: list[Any]) -> list[str]:
    return [type(o).__name__ if o is not None else "no-op" for o in outcomes]


def test_a_tool_use_loop_is_recorded_step_by_step() -> None:
    state, out = run(model(1, "a", "b"), call(2, "a"), ret(3, "a"), call(4, "b"), ret(5, "b"),
                     model(6))  # fmt: skip
    assert names(out) == [
        "AgentModelCalled", "AgentToolCalled", "AgentToolReturned", "AgentToolCalled",
        "AgentToolReturned", "AgentModelCalled",
    ]  # fmt: skip
    assert (state.status, state.steps, state.pending, state.open_call) == ("running", 6, (), None)


def test_a_step_recorded_already_is_a_no_op() -> None:
    state, out = run(model(1, "a"), model(1, "a"), call(2, "a"), call(2, "a"))
    assert names(out) == ["AgentModelCalled", "no-op", "AgentToolCalled", "no-op"]
    assert state.steps == 2


def test_a_gap_in_the_step_numbers_is_rejected_and_named() -> None:
    _, out = run(model(1, "a"), call(3, "a"))
    assert isinstance(out[1], Rejected)
    assert out[1].reason == "step 3 out of order: the last recorded step is 1"


def test_a_model_call_while_a_tool_use_is_unanswered_is_rejected() -> None:
    _, out = run(model(1, "a"), model(2))
    assert isinstance(out[1], Rejected)
    assert "unanswered: a" in out[1].reason


def test_a_tool_call_the_model_did_not_ask_for_is_rejected() -> None:
    _, out = run(model(1, "a"), call(2, "zzz"))
    assert isinstance(out[1], Rejected)
    assert "zzz was not asked for" in out[1].reason


def test_a_second_call_while_one_is_open_and_a_result_for_no_call_are_rejected() -> None:
    _, out = run(model(1, "a", "b"), call(2, "a"), call(3, "b"))
    assert isinstance(out[2], Rejected) and "while a has not returned" in out[2].reason
    _, out = run(model(1, "a"), ret(2, "a"))
    assert isinstance(out[1], Rejected) and "answers no open tool call" in out[1].reason


def test_a_stale_attempt_s_step_is_rejected_after_a_redelivery() -> None:
    redelivered = RecordStatus(status="received", attempt=2)
    _, out = run(model(1, "a"), redelivered, call(2, "a", attempt=1))
    assert isinstance(out[2], Rejected)
    assert out[2].reason == "stale report from attempt 1; the job is on attempt 2"


def test_a_resumed_attempt_returns_the_tool_its_predecessor_called() -> None:
    resumed = (
        RecordStatus(status="received", attempt=2),
        RecordStatus(status="running", attempt=2),
    )
    state, out = run(model(1, "a"), call(2, "a"), *resumed, ret(3, "a", attempt=2),
                     model(4, attempt=2))  # fmt: skip
    assert names(out)[-2:] == ["AgentToolReturned", "AgentModelCalled"]
    assert state.attempt == 2 and state.steps == 4


def test_a_stale_step_while_the_next_attempt_runs_is_rejected_and_named() -> None:
    resumed = (
        RecordStatus(status="received", attempt=2),
        RecordStatus(status="running", attempt=2),
    )
    _, out = run(model(1, "a"), *resumed, call(2, "a", attempt=1))
    assert isinstance(out[3], Rejected)
    assert out[3].reason == "stale step from attempt 1; the job is on attempt 2"


def test_steps_of_a_job_that_is_not_running_are_rejected() -> None:
    done = RecordStatus(status="completed", attempt=1, source="result", result={"text": "x"})
    _, out = run(model(1), done, model(2))
    assert isinstance(out[2], Rejected)
    assert "terminal states absorb" in out[2].reason


def test_a_budget_failure_records_the_budget_then_fails_with_its_reason() -> None:
    budget = {"limit": "maxTotalTokens", "allowed": 100, "used": 80, "projected": 120}
    failed = RecordStatus(status="failed", attempt=1, source="result", error="budget exceeded",
                          reason="budget_exceeded", budget=budget)  # fmt: skip
    events: list[DomainEvent] = []
    for cmd in (DispatchJob(spec=SPEC), *STARTED, model(1)):
        decision = decide("job", fold("job", events), cmd)
        assert not isinstance(decision, Rejected)
        events += decision
    decision = decide("job", fold("job", events), failed)
    assert not isinstance(decision, Rejected)
    exceeded, fail = decision
    assert isinstance(exceeded, JobBudgetExceeded) and exceeded.projected == 120
    assert isinstance(fail, JobFailed) and fail.reason == "budget_exceeded"


def approval(step: int, use: str) -> RecordStep:
    return RecordStep(attempt=1, step=step, kind="approval", tool_use_id=use, tool="command",
                      input={"command": "ls"})  # fmt: skip


def test_a_tool_call_asking_for_approval_makes_the_job_wait() -> None:
    state, out = run(model(1, "a"), approval(2, "a"))
    assert names(out) == ["AgentModelCalled", "AgentApprovalRequested"]
    assert (state.status, state.awaiting, state.steps) == ("waiting", "a", 2)


def test_an_approval_queues_the_job_again_and_its_tool_then_runs() -> None:
    again = (RecordStatus(status="received", attempt=2), RecordStatus(status="running", attempt=2))
    state, out = run(model(1, "a"), approval(2, "a"), AnswerApproval("a", approve=True, by="ops"),
                     *again, call(3, "a", attempt=2), ret(4, "a", attempt=2))  # fmt: skip
    assert names(out)[2] == "AgentApprovalGranted"
    assert names(out)[-2:] == ["AgentToolCalled", "AgentToolReturned"]
    assert state.status == "running" and state.awaiting is None


def test_a_denial_records_the_tool_s_return_as_an_error_quoting_the_note() -> None:
    state, out = run(model(1, "a"), approval(2, "a"), AnswerApproval("a", approve=False,
                     note="not on prod"))  # fmt: skip
    returned = out[-1]
    assert names(out)[-1] == "AgentToolReturned"
    assert returned.is_error and returned.output == "denied by an operator: not on prod"  # type: ignore[union-attr]
    assert (state.status, state.steps, state.pending) == ("dispatched", 3, ())


def test_an_answer_to_a_job_that_is_not_waiting_or_for_another_call_is_rejected() -> None:
    _, out = run(model(1, "a"), AnswerApproval("a", approve=True))
    assert isinstance(out[-1], Rejected)
    assert out[-1].reason == "the job is not waiting for an approval"
    _, out = run(model(1, "a"), approval(2, "a"), AnswerApproval("zzz", approve=True))
    assert isinstance(out[-1], Rejected)
    assert out[-1].reason == "the job waits for approval of a, not zzz"


def test_cancelling_a_waiting_job_cancels_it_at_once() -> None:
    state, out = run(model(1, "a"), approval(2, "a"), RequestCancel(reason="no longer needed"))
    assert names(out)[-1] == "JobCancelled" and state.status == "cancelled"
