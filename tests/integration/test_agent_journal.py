"""The agent executor with a step journal (DESIGN §10): each step recorded before the next
begins, a run continuing after the recorded steps, budgets stopping before a model call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.executors.agent import run_agent
from adapters.executors.base import Execution
from domain.conversation import rebuild
from domain.events import AgentModelCalled, AgentToolCalled, AgentToolReturned, DomainEvent, Usage
from domain.specs import AgentPayload
from domain.wire_steps import StepKind
from tests.fakes.anthropic_server import FakeAnthropic, text_message, tool_use

MODEL = "claude-sonnet-4-5"


class Journal:
    """A `StepJournal` in memory: what `record` got becomes what `recorded` gives."""

    def __init__(self, recorded: Sequence[DomainEvent] = ()) -> None:
        self.events: list[DomainEvent] = list(recorded)
        self.kinds: list[tuple[StepKind, int]] = []

    async def recorded(self) -> Sequence[DomainEvent]:
        return list(self.events)

    async def record(self, kind: StepKind, step: int, **fields: Any) -> None:
        self.kinds.append((kind, step))
        usage = fields.pop("usage", None)
        fields.pop("duration_ms", None)
        if kind == "model":
            self.events.append(
                AgentModelCalled(attempt=1, step=step, usage=usage or Usage(), **fields)
            )
        elif kind == "toolCall":
            self.events.append(AgentToolCalled(attempt=1, step=step, **fields))
        else:
            self.events.append(AgentToolReturned(attempt=1, step=step, **fields))


async def run(api: FakeAnthropic, journal: Journal, **payload: Any) -> Execution:
    return await run_agent(
        AgentPayload.model_validate({"prompt": "How is the disk?", "model": MODEL, **payload}),
        api_key="test-key", base_url=api.base_url, allowed_commands=("echo",), journal=journal,
    )  # fmt: skip


async def test_every_step_is_recorded_in_order_with_usage_and_cost() -> None:
    journal = Journal()
    script = [tool_use("command", {"command": "echo hi"}, usage=(1000, 100)),
              text_message("fine", usage=(2000, 50))]  # fmt: skip
    with FakeAnthropic(script) as api:
        execution = await run(api, journal)
    assert execution.ok, execution.error
    assert journal.kinds == [("model", 1), ("toolCall", 2), ("toolResult", 3), ("model", 4)]
    assert execution.result["costUsd"] == round((3000 * 3 + 150 * 15) / 1e6, 6)
    assert execution.result["usage"]["inputTokens"] == 3000


async def test_a_run_after_the_final_reply_is_recorded_makes_no_call_at_all() -> None:
    journal = Journal()
    with FakeAnthropic([text_message("fine")]) as api:
        await run(api, journal)
    with FakeAnthropic([]) as again:  # any request would get a 500
        execution = await run(again, Journal(journal.events))
    assert execution.ok and execution.result["text"] == "fine"
    assert again.requests == []


async def test_a_resumed_run_sends_the_recorded_conversation_on() -> None:
    journal = Journal()
    with FakeAnthropic([tool_use("command", {"command": "echo hi"})]) as api:
        await run(api, journal)  # the second call finds no scripted reply: the job fails
    recorded = [e for e in journal.events if not isinstance(e, AgentModelCalled) or e.step == 1]
    with FakeAnthropic([text_message("fine")]) as again:
        execution = await run(again, Journal(recorded))
    assert execution.ok
    (request,) = again.requests
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert request["messages"][2]["content"][0]["type"] == "tool_result"
    assert execution.result["steps"] == 4


async def test_a_token_budget_stops_the_job_before_the_call_that_would_pass_it() -> None:
    journal = Journal()
    script = [tool_use("command", {"command": "echo hi"}, usage=(100, 20)), text_message("x")]
    with FakeAnthropic(script) as api:
        execution = await run(api, journal, budget={"maxTotalTokens": 200})
    assert not execution.ok and execution.reason == "budget_exceeded"
    assert execution.details == {"limit": "maxTotalTokens", "allowed": 200, "used": 120,
                                 "projected": 240}  # fmt: skip
    assert len(api.requests) == 1  # the second call was never made
    assert "budget exceeded" in (execution.error or "")


async def test_the_conversation_rebuilt_from_the_journal_matches_the_live_one() -> None:
    journal = Journal()
    script = [tool_use("command", {"command": "echo hi"}), text_message("fine")]
    with FakeAnthropic(script) as api:
        await run(api, journal)
    conv = rebuild("How is the disk?", journal.events)
    assert conv.messages[:3] == api.requests[1]["messages"]
