"""Which step of an agent job may follow which (DESIGN §10), as guards of the job machine.

Steps are numbered from 1 without gaps. A model call may come first or after every tool call
of the previous model reply has returned; a tool call names a tool use the last reply asked
for, one at a time; a tool's return answers the open call. A step already recorded (its
number is not past the last one) is a duplicate, e.g. a redelivered message: a no-op.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from domain.commands import RecordStep
from domain.events import (
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    DomainEvent,
    Usage,
)

STEP_TRIGGERS: Final = {"model": "call_model", "toolCall": "call_tool", "toolResult": "return_tool"}


class StepState(Protocol):
    @property
    def attempt(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def pending(self) -> tuple[str, ...]: ...
    @property
    def open_call(self) -> str | None: ...


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


STEP_GUARDS: Final = {
    "model_may_follow": model_may_follow,
    "tool_may_be_called": tool_may_be_called,
    "tool_may_return": tool_may_return,
}
STEP_GUARD_TEXT: Final = {
    "model_may_follow": "the next step of the current attempt, every tool use of the last "
    "reply answered",
    "tool_may_be_called": "the next step, a tool use the last reply asked for, no call open",
    "tool_may_return": "the next step, answering the open tool call",
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
    if cmd.kind == "toolCall" and state.open_call is not None:
        return f"tool call {cmd.tool_use_id} while {state.open_call} has not returned"
    if cmd.kind == "toolCall":
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
    if cmd.kind == "toolCall":
        return AgentToolCalled(
            attempt=cmd.attempt, step=cmd.step, tool_use_id=cmd.tool_use_id or "",
            tool=cmd.tool or "", input=cmd.input,
        )  # fmt: skip
    return AgentToolReturned(
        attempt=cmd.attempt, step=cmd.step, tool_use_id=cmd.tool_use_id or "",
        output=cmd.output or "", is_error=cmd.is_error, duration_ms=cmd.duration_ms,
    )  # fmt: skip
