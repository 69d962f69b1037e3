"""Random agent-job histories (DESIGN §10): steps, worker crashes between any two of them,
redelivered and stale step messages, approvals answered or not, budgets and cancels. The
invariants are checked on the log as §10 states them, not through the transition table."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters.eventstore import InMemoryEventStore
from domain.commands import AnswerApproval, DispatchJob, RecordStatus, RecordStep, RequestCancel
from domain.conversation import job_steps, rebuild
from domain.lifecycle import fold
from domain.specs import parse_job_spec
from services.executor import CommandExecutor

JOB = "job-agent-chaos"
SPEC = parse_job_spec({"type": "agent", "payload": {"prompt": "go", "approve": ["command"]}})
STEP_TYPES = {"AgentModelCalled", "AgentToolCalled", "AgentToolReturned", "AgentApprovalRequested"}
TERMINAL = {"JobCompleted", "JobFailed", "JobCancelled"}
_ids = itertools.count(1)


class AgentChaos(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = InMemoryEventStore()
        self.executor = CommandExecutor(self.store)
        self.sent: list[Any] = []
        self.attempt = 0

    def execute(self, cmd: Any) -> Any:
        self.sent.append(cmd)
        return self.loop.run_until_complete(self.executor.execute("job", JOB, cmd))

    def events(self) -> list[Any]:
        history = self.loop.run_until_complete(self.store.load("job", JOB))
        return [e.envelope for e in history.events]

    def state(self) -> Any:
        return fold("job", [e.data for e in self.events()])

    def deliver(self) -> None:
        """A worker takes the job: the next attempt's `received` and `running`."""
        self.attempt += 1
        self.execute(RecordStatus(status="received", attempt=self.attempt))
        self.execute(RecordStatus(status="running", attempt=self.attempt))

    @initialize()
    def dispatch(self) -> None:
        self.execute(DispatchJob(spec=SPEC))
        self.deliver()

    def _next_step(self, model_uses: int, tool: str) -> RecordStep:
        """What the agent loop does next, resumed from the log as a worker would."""
        conv = rebuild("go", job_steps(e.data for e in self.events()))
        step, attempt = conv.last_step + 1, self.attempt
        if conv.awaiting_tools:
            use = conv.unanswered()[0]
            if use.tool == "command" and use.approval != "granted":
                return RecordStep(attempt=attempt, step=step, kind="approval",
                                  tool_use_id=use.tool_use_id, tool=use.tool)  # fmt: skip
            if not use.called:
                return RecordStep(attempt=attempt, step=step, kind="toolCall",
                                  tool_use_id=use.tool_use_id, tool=use.tool)  # fmt: skip
            return RecordStep(attempt=attempt, step=step, kind="toolResult",
                              tool_use_id=use.tool_use_id, output="ok")  # fmt: skip
        uses = tuple(
            {"type": "tool_use", "id": f"toolu_{next(_ids)}", "name": tool, "input": {}}
            for _ in range(model_uses)
        )
        return RecordStep(
            attempt=attempt, step=step, kind="model", model="m", content=uses,
            stop_reason="tool_use" if uses else "end_turn", usage={"inputTokens": 5},
        )  # fmt: skip

    @precondition(lambda self: self.state().status == "running")
    @rule(model_uses=st.integers(0, 2), tool=st.sampled_from(["http", "command"]))
    def the_worker_takes_its_next_step(self, model_uses: int, tool: str) -> None:
        self.execute(self._next_step(model_uses, tool))

    @precondition(lambda self: self.state().status in ("received", "running"))
    @rule()
    def the_worker_dies_and_the_job_is_redelivered(self) -> None:
        self.deliver()

    @rule(data=st.data())
    def an_old_message_arrives_again(self, data: st.DataObject) -> None:
        self.execute(data.draw(st.sampled_from(self.sent)))

    @rule(
        kind=st.sampled_from(["model", "toolCall", "toolResult", "approval"]),
        ahead=st.integers(-2, 2),
        use=st.integers(0, 3),
        stop=st.sampled_from(["tool_use", "end_turn"]),
    )
    def a_confused_worker_sends_any_step(self, kind: Any, ahead: int, use: int, stop: str) -> None:
        """Any kind, any number near the next, any tool use id seen so far: whatever the
        lifecycle lets in must keep every invariant."""
        state = self.state()
        asked = [b["id"] for e in self.events() if e.type == "AgentModelCalled"
                 for b in e.data.content]  # fmt: skip
        ids = [*[*dict.fromkeys(reversed(asked))][:3], "toolu_unknown"]
        use_id = ids[use % len(ids)]
        block = {"type": "tool_use", "id": f"toolu_{next(_ids)}", "name": "http", "input": {}}
        self.execute(RecordStep(
            attempt=self.attempt, step=max(1, state.steps + 1 + ahead), kind=kind,
            tool_use_id=use_id, tool="http", output="?", model="m", stop_reason=stop,
            content=(block,) if stop == "tool_use" else (),
        ))  # fmt: skip

    @precondition(lambda self: self.attempt > 1 and self.state().status == "running")
    @rule()
    def a_stale_worker_still_sends_a_step(self) -> None:
        step = self._next_step(0, "http")
        stale = RecordStep(attempt=self.attempt - 1, step=step.step, kind=step.kind,
                           tool_use_id=step.tool_use_id, tool=step.tool, model=step.model,
                           content=step.content, output=step.output)  # fmt: skip
        assert self.execute(stale).rejected is not None

    @rule(approve=st.booleans(), right_call=st.booleans())
    def an_operator_answers(self, approve: bool, right_call: bool) -> None:
        awaited = self.state().awaiting
        use = awaited if right_call and awaited else "toolu_nobody"
        outcome = self.execute(AnswerApproval(tool_use_id=use, approve=approve))
        if outcome.rejected is None:
            self.deliver()  # queued again: a worker resumes it

    @precondition(lambda self: self.state().status == "running")
    @rule(budget=st.booleans())
    def the_worker_ends_the_job(self, budget: bool) -> None:
        if budget:
            detail = {"limit": "maxTotalTokens", "allowed": 10, "used": 10, "projected": 20}
            self.execute(RecordStatus(status="failed", attempt=self.attempt, source="result",
                                      error="budget exceeded", reason="budget_exceeded",
                                      budget=detail))  # fmt: skip
        else:
            self.execute(RecordStatus(status="completed", attempt=self.attempt, source="result",
                                      result={"text": "done"}))  # fmt: skip

    @rule()
    def someone_cancels(self) -> None:
        self.execute(RequestCancel("operator"))

    @invariant()
    def steps_are_numbered_without_gaps_or_repeats(self) -> None:
        numbers = [e.data.step for e in self.events() if e.type in STEP_TYPES]
        assert numbers == list(range(1, len(numbers) + 1))

    @invariant()
    def no_model_call_or_tool_return_is_recorded_twice(self) -> None:
        returned: list[str] = []
        calls: set[str] = set()
        for env in self.events():
            if env.type == "AgentModelCalled":
                for block in env.data.content:
                    assert block["id"] not in calls, "a model reply recorded twice"
                    calls.add(block["id"])
            if env.type == "AgentToolReturned":
                returned.append(env.data.tool_use_id)
        assert len(returned) == len(set(returned)), "a tool's return recorded twice"

    @invariant()
    def a_tool_returns_only_after_its_call_or_a_denial(self) -> None:
        answered: set[str] = set()
        for env in self.events():
            if env.type in ("AgentToolCalled", "AgentApprovalDenied"):
                answered.add(env.data.tool_use_id)
            if env.type == "AgentToolReturned":
                assert env.data.tool_use_id in answered

    @invariant()
    def a_model_call_never_skips_an_unanswered_tool_use(self) -> None:
        open_uses: set[str] = set()
        for env in self.events():
            if env.type == "AgentModelCalled":
                assert not open_uses, f"model called while {open_uses} unanswered"
                if env.data.stop_reason == "tool_use":
                    open_uses = {b["id"] for b in env.data.content}
            if env.type == "AgentToolReturned":
                open_uses.discard(env.data.tool_use_id)

    @invariant()
    def steps_come_only_from_the_current_attempt_while_running(self) -> None:
        attempt, status = 0, "dispatched"
        for env in self.events():
            if env.type in ("JobReceived", "JobStarted"):
                assert env.data.attempt >= attempt, "attempts only grow"
                attempt = env.data.attempt
            if env.type in ("AgentModelCalled", "AgentToolCalled", "AgentApprovalRequested"):
                assert env.data.attempt == attempt and status == "running"
            status = _status_after(env.type, status)

    @invariant()
    def terminal_states_absorb_and_budgets_fail_with_their_reason(self) -> None:
        events = self.events()
        ends = [i for i, e in enumerate(events) if e.type in TERMINAL]
        if ends:
            later = [e.type for e in events[ends[0] + 1 :]]
            assert set(later) <= {"TransitionRejected", "JobResultRecorded"}, later
        for i, env in enumerate(events):
            if env.type == "JobBudgetExceeded":
                assert events[i + 1].type == "JobFailed"
                assert events[i + 1].data.reason == "budget_exceeded"

    @invariant()
    def folding_the_log_equals_the_live_state(self) -> None:
        cached, _ = self.loop.run_until_complete(self.executor.current("job", JOB))
        assert cached == self.state()

    def teardown(self) -> None:
        self.loop.close()


_AFTER = {"JobReceived": "received", "JobStarted": "running", "AgentApprovalRequested": "waiting",
          "AgentApprovalGranted": "dispatched", "AgentApprovalDenied": "dispatched"}  # fmt: skip


def _status_after(event: str, status: str) -> str:
    return _AFTER.get(event, status)


AgentChaos.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
TestAgentChaos = AgentChaos.TestCase
