"""An agent job's conversation rebuilt from its recorded steps (DESIGN §10, resume).

Pure: the recorded `AgentModelCalled`, `AgentToolCalled` and `AgentToolReturned` events in,
the Messages API conversation, the step to number next, the usage so far and the tool uses
still to answer out. A model call whose reply is recorded is never made again; a tool call
whose return is recorded is never run again; a call recorded without its return runs again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from domain.events import (
    AgentApprovalDenied,
    AgentApprovalGranted,
    AgentApprovalRequested,
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    DomainEvent,
    JobDispatched,
)
from domain.lifecycle.steps import forked_steps


@dataclass(frozen=True)
class ToolUse:
    """A tool use the model asked for, and how far it got."""

    tool_use_id: str
    tool: str
    input: dict[str, Any]
    called: bool = False  # `AgentToolCalled` recorded
    output: str | None = None  # `AgentToolReturned` recorded
    is_error: bool = False
    approval: str | None = None  # None | "requested" | "granted" | "denied"
    note: str | None = None


@dataclass
class Conversation:
    prompt: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    last_step: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    last_reply: AgentModelCalled | None = None
    open_uses: list[ToolUse] = field(default_factory=list)  # of the last reply, in order
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # for the result document

    def __post_init__(self) -> None:
        if not self.messages:
            self.messages.append({"role": "user", "content": self.prompt})

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens + self.output_tokens + self.cache_read_tokens
            + self.cache_write_tokens
        )  # fmt: skip

    @property
    def awaiting_tools(self) -> bool:
        """The last reply asked for tools and their results are not yet in the conversation."""
        return bool(self.open_uses)

    @property
    def answered(self) -> bool:
        """The last reply was a final answer (no tool use asked)."""
        return (
            self.last_reply is not None
            and not self.open_uses
            and (self.last_reply.stop_reason != "tool_use")
        )

    def next_step(self) -> int:
        self.last_step += 1
        return self.last_step

    def add_reply(self, event: AgentModelCalled) -> None:
        self.last_step = max(self.last_step, event.step)
        self.model_calls += 1
        self.last_reply = event
        usage = event.usage
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.cost_usd = round(self.cost_usd + event.cost_usd, 6)
        self.messages.append({"role": "assistant", "content": event.content})
        self.open_uses = []
        if event.stop_reason == "tool_use":
            self.open_uses = [
                ToolUse(str(b["id"]), str(b.get("name", "")), dict(b.get("input") or {}))
                for b in event.content
                if b.get("type") == "tool_use" and "id" in b
            ]

    def _replace(self, use_id: str, **changes: Any) -> None:
        for i, use in enumerate(self.open_uses):
            if use.tool_use_id == use_id:
                self.open_uses[i] = replace(use, **changes)

    def add_call(self, event: AgentToolCalled) -> None:
        self.last_step = max(self.last_step, event.step)
        self._replace(event.tool_use_id, called=True)
        self.tool_calls.append({"name": event.tool, "input": event.input, "ok": None})

    def add_return(self, event: AgentToolReturned) -> None:
        self.last_step = max(self.last_step, event.step)
        self._replace(event.tool_use_id, output=event.output, is_error=event.is_error)
        for call in reversed(self.tool_calls):
            if call["ok"] is None:
                call["ok"] = not event.is_error
                break
        self._close_turn_if_done()

    def add_approval(self, event: DomainEvent) -> None:
        if isinstance(event, AgentApprovalRequested):
            self.last_step = max(self.last_step, event.step)
            self._replace(event.tool_use_id, approval="requested")
        elif isinstance(event, AgentApprovalGranted):
            self._replace(event.tool_use_id, approval="granted", note=event.note)
        elif isinstance(event, AgentApprovalDenied):
            self._replace(event.tool_use_id, approval="denied", note=event.note)

    def unanswered(self) -> list[ToolUse]:
        return [use for use in self.open_uses if use.output is None]

    def _close_turn_if_done(self) -> None:
        """Once every tool use of the reply has its output, the results go back as one user
        turn, in the order the model asked."""
        if not self.open_uses or self.unanswered():
            return
        results = [
            {"type": "tool_result", "tool_use_id": use.tool_use_id, "content": use.output,
             "is_error": use.is_error}
            for use in self.open_uses
        ]  # fmt: skip
        self.messages.append({"role": "user", "content": results})
        self.open_uses = []


_STEP_FOLDS = {
    AgentModelCalled: Conversation.add_reply,
    AgentToolCalled: Conversation.add_call,
    AgentToolReturned: Conversation.add_return,
}


def rebuild(prompt: str, steps: Iterable[DomainEvent], *, up_to: int | None = None) -> Conversation:
    """The conversation after the recorded `steps` (events of other types are skipped);
    `up_to`: only the steps numbered up to it (a fork)."""
    conversation = Conversation(prompt)
    for event in steps:
        step = getattr(event, "step", None)
        if up_to is not None and step is not None and step > up_to:
            break
        fold = _STEP_FOLDS.get(type(event))
        if fold is not None:
            fold(conversation, event)  # type: ignore[operator]
        else:
            conversation.add_approval(event)
    return conversation


STEP_EVENTS = (
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    AgentApprovalRequested,
    AgentApprovalGranted,
    AgentApprovalDenied,
)


def job_steps(events: Iterable[DomainEvent]) -> list[DomainEvent]:
    """The step and approval events of a job's history, a fork's copied steps first."""
    out: list[DomainEvent] = []
    for event in events:
        if isinstance(event, JobDispatched):
            out.extend(forked_steps(event))
        elif isinstance(event, STEP_EVENTS):
            out.append(event)
    return out
