"""Which step of an agent job may follow which (DESIGN §10), as guards of the job machine.

Steps are numbered from 1 without gaps. A model call may come first or after every tool call
of the previous model reply has returned; a tool call names a tool use the last reply asked
for, one at a time; a tool's return answers the open call. A step already recorded (its
number is not past the last one) is a duplicate, e.g. a redelivered message: a no-op.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from domain.commands import AnswerApproval, RecordStep
from domain.events import (
    AgentApprovalDenied,
    AgentApprovalGranted,
    AgentApprovalRequested,
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    DomainEvent,
    JobDispatched,
    Usage,
    event_types,
)

STEP_TRIGGERS: Final = {
    "model": "call_model",
    "toolCall": "call_tool",
    "toolResult": "return_tool",
    "approval": "request_approval",
}


class StepState(Protocol):
    @property
    def attempt(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def pending(self) -> tuple[str, ...]: ...
    @property
    def open_call(self) -> str | None: ...
    @property
    def awaiting(self) -> str | None: ...


def _next(state: StepState, cmd: Any) -> bool:
    return (
        isinstance(cmd, RecordStep)
        and cmd.step == state.steps + 1
        and (cmd.attempt == state.attempt)
    )


def model_may_follow(state: StepState, cmd: Any) -> bool:
    return _next(state, cmd) and not state.pending and state.open_call is None


def tool_may_be_called(state: StepState, cmd: Any) -> bool:
    return _next(state, cmd) and state.open_call is None and cmd.tool_use_id in state.pending


def tool_may_return(state: StepState, cmd: Any) -> bool:
    return _next(state, cmd) and cmd.tool_use_id == state.open_call


def answers_the_request(state: Any, cmd: Any) -> bool:
    return bool(getattr(cmd, "tool_use_id", None) == state.awaiting)


STEP_GUARDS: Final = {
    "model_may_follow": model_may_follow,
    "tool_may_be_called": tool_may_be_called,
    "tool_may_return": tool_may_return,
    "answers_the_request": answers_the_request,
}
STEP_GUARD_TEXT: Final = {
    "model_may_follow": "the next step of the current attempt, every tool use of the last "
    "reply answered",
    "tool_may_be_called": "the next step, a tool use the last reply asked for, no call open",
    "tool_may_return": "the next step, answering the open tool call",
    "answers_the_request": "names the tool call that waits for approval",
}


def is_duplicate_step(state: StepState, cmd: RecordStep) -> bool:
    return cmd.step <= state.steps


def step_rejection(state: StepState, cmd: RecordStep) -> str:
    """Why a step that is not the next one, nor a duplicate, is refused."""
    if cmd.attempt != state.attempt:
        when = "stale step from" if cmd.attempt < state.attempt else "step ahead of"
        return f"{when} attempt {cmd.attempt}; the job is on attempt {state.attempt}"
    if cmd.step != state.steps + 1:
        return f"step {cmd.step} out of order: the last recorded step is {state.steps}"
    return _order_rejection(state, cmd)


def _order_rejection(state: StepState, cmd: RecordStep) -> str:
    if cmd.kind == "model":
        waiting = state.open_call or ", ".join(state.pending)
        return f"model call while tool uses are unanswered: {waiting}"
    if cmd.kind in ("toolCall", "approval") and state.open_call is not None:
        return f"tool call {cmd.tool_use_id} while {state.open_call} has not returned"
    if cmd.kind in ("toolCall", "approval"):
        return f"tool call {cmd.tool_use_id} was not asked for by the last model reply"
    return f"tool result {cmd.tool_use_id} answers no open tool call"


def tool_uses(content: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> tuple[str, ...]:
    """The ids of the tool uses in an assistant reply's content blocks."""
    return tuple(
        str(block["id"])
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_use" and "id" in block
    )


def step_event(cmd: RecordStep) -> DomainEvent:
    if cmd.kind == "model":
        return AgentModelCalled(
            attempt=cmd.attempt, step=cmd.step, model=cmd.model or "", stop_reason=cmd.stop_reason,
            content=list(cmd.content), usage=Usage.model_validate(cmd.usage),
            cost_usd=cmd.cost_usd, duration_ms=cmd.duration_ms,
        )  # fmt: skip
    if cmd.kind == "approval":
        return AgentApprovalRequested(
            attempt=cmd.attempt, step=cmd.step, tool_use_id=cmd.tool_use_id or "",
            tool=cmd.tool or "", input=cmd.input,
        )  # fmt: skip
    if cmd.kind == "toolCall":
        return AgentToolCalled(
            attempt=cmd.attempt, step=cmd.step, tool_use_id=cmd.tool_use_id or "",
            tool=cmd.tool or "", input=cmd.input,
        )  # fmt: skip
    return AgentToolReturned(
        attempt=cmd.attempt, step=cmd.step, tool_use_id=cmd.tool_use_id or "",
        output=cmd.output or "", is_error=cmd.is_error, duration_ms=cmd.duration_ms,
    )  # fmt: skip


def approval_rejection(state: StepState, cmd: AnswerApproval) -> str:
    if state.awaiting is not None:
        return f"the job waits for approval of {state.awaiting}, not {cmd.tool_use_id}"
    return "the job is not waiting for an approval"


def approval_events(state: StepState, cmd: AnswerApproval) -> list[DomainEvent]:
    """An operator's answer. Granted: the job is queued again and its worker runs the tool.
    Denied: the tool's return is recorded here, an error quoting the note, so the resumed
    model sees the refusal and the tool never runs."""
    if cmd.approve:
        return [AgentApprovalGranted(tool_use_id=cmd.tool_use_id, note=cmd.note, by=cmd.by)]
    output = "denied by an operator" + (f": {cmd.note}" if cmd.note else "")
    return [
        AgentApprovalDenied(tool_use_id=cmd.tool_use_id, note=cmd.note, by=cmd.by),
        AgentToolReturned(
            attempt=max(state.attempt, 1), step=state.steps + 1, tool_use_id=cmd.tool_use_id,
            output=output, is_error=True,
        ),
    ]  # fmt: skip


def forked_steps(e: JobDispatched) -> list[DomainEvent]:
    """The step events a fork was dispatched with, decoded (`{"type", "data"}` documents)."""
    types = event_types()
    out: list[DomainEvent] = []
    for doc in e.forked_steps or ():
        cls = types.get(str(doc.get("type")))
        if cls is not None:
            out.append(cls.model_validate(doc.get("data") or {}))
    return out
