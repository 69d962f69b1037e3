"""Answering an approval (DESIGN §10) on fakes: the answer recorded, the job queued again
with its next attempt under a message id of its own; a waiting job past its approval timeout
failed `approval_timeout`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.commands import DispatchJob, RecordStatus, RecordStep
from domain.events import JobFailed
from domain.specs import parse_job_spec
from services.brain.approvals import Approvals, NoSuchJob, NotWaiting
from services.brain.watchdog import Watchdog
from services.executor import CommandExecutor
from tests.fakes.clock import FakeClock
from tests.fakes.jobqueue import FakeJobQueue

AGENT = parse_job_spec({"type": "agent", "payload": {
    "prompt": "clean up", "approve": ["command"], "approvalTimeoutSeconds": 600,
}})  # fmt: skip
USE = {"type": "tool_use", "id": "toolu_1", "name": "command", "input": {"command": "ls"}}


async def waiting_job(executor: CommandExecutor, job_id: str = "job-w", spec: Any = AGENT) -> Any:
    await executor.execute("job", job_id, DispatchJob(spec=spec), new=True)
    for cmd in (
        RecordStatus(status="received", attempt=1),
        RecordStatus(status="running", attempt=1),
        RecordStep(attempt=1, step=1, kind="model", model="m", stop_reason="tool_use",
                   content=(USE,)),
        RecordStep(attempt=1, step=2, kind="approval", tool_use_id="toolu_1", tool="command",
                   input={"command": "ls"}),
    ):  # fmt: skip
        outcome = await executor.execute("job", job_id, cmd)
    return outcome.state


def queued(queue: FakeJobQueue) -> list[tuple[dict[str, Any], str | None]]:
    return [
        (json.loads(m.data), m.headers.get("Nats-Msg-Id"))
        for m in queue.jobs.messages.values()
        if m.subject == "baker.jobs.dispatch"
    ]


async def test_an_approval_is_recorded_and_the_job_queued_with_its_next_attempt() -> None:
    executor, queue = CommandExecutor(InMemoryEventStore()), FakeJobQueue()
    state = await waiting_job(executor)
    assert state.status == "waiting"
    answered = await Approvals(executor, queue).answer("job-w", None, True, "ok", by="ops")
    assert answered.queued
    history = await executor.store.load("job", "job-w")
    assert history.state.status == "dispatched"
    assert history.events[-1].envelope.type == "AgentApprovalGranted"
    ((doc, msg_id),) = queued(queue)
    assert doc["attempt"] == 2 and msg_id == "job-w:2"  # not the first dispatch's id
    assert doc["payload"]["approve"] == ["command"]


async def test_a_denial_records_the_refusal_as_the_tool_s_return() -> None:
    executor, queue = CommandExecutor(InMemoryEventStore()), FakeJobQueue()
    await waiting_job(executor)
    await Approvals(executor, queue).answer("job-w", "toolu_1", False, "not today")
    history = await executor.store.load("job", "job-w")
    types = [e.envelope.type for e in history.events[-2:]]
    assert types == ["AgentApprovalDenied", "AgentToolReturned"]
    assert history.events[-1].envelope.data.output == "denied by an operator: not today"


async def test_nothing_to_answer_is_named() -> None:
    executor, queue = CommandExecutor(InMemoryEventStore()), FakeJobQueue()
    approvals = Approvals(executor, queue)
    with pytest.raises(NoSuchJob):
        await approvals.answer("job-none", "toolu_1", True)
    await waiting_job(executor)
    with pytest.raises(NotWaiting, match="waits for approval of toolu_1, not toolu_9"):
        await approvals.answer("job-w", "toolu_9", True)
    await approvals.answer("job-w", "toolu_1", True)
    with pytest.raises(NotWaiting, match="not waiting for an approval"):
        await approvals.answer("job-w", "toolu_1", True)
    assert len(queued(queue)) == 1


async def test_a_job_waiting_past_its_approval_timeout_is_failed() -> None:
    clock = FakeClock()
    executor, queue = CommandExecutor(InMemoryEventStore()), FakeJobQueue(clock=clock)
    watchdog = Watchdog(executor, queue, None, stuck_after=120, clock=clock)
    watchdog.observe("job-w", await waiting_job(executor))
    await clock.advance(599)  # past the stuck timeout: a waiting job is not stuck
    await watchdog.check()
    assert (await executor.store.load("job", "job-w")).state.status == "waiting"
    await clock.advance(2)
    await watchdog.check()
    history = await executor.store.load("job", "job-w")
    assert history.state.status == "failed"
    assert history.events[-1].envelope.data.reason == "approval_timeout"


async def test_an_approved_job_whose_prompt_was_masked_fails_naming_why() -> None:
    """Its recorded prompt is not the one sent (a credential in it was masked, DESIGN §12):
    rather than resume a different conversation, the job fails `dispatch_failed`."""
    executor, queue = CommandExecutor(InMemoryEventStore()), FakeJobQueue()
    spec = parse_job_spec({"type": "agent", "payload": {
        "prompt": "call it with xoxb-1234567890-abcdefghij", "approve": ["command"],
    }})  # fmt: skip
    await waiting_job(executor, "job-s", spec)
    answered = await Approvals(executor, queue).answer("job-s", None, True, by="ops")
    assert not answered.queued and queued(queue) == []
    history = await executor.store.load("job", "job-s")
    assert history.state.status == "failed"
    failed = history.events[-1].envelope.data
    assert isinstance(failed, JobFailed)
    assert failed.reason == "dispatch_failed" and "payload held secrets" in failed.error
