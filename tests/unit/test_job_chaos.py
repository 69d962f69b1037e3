"""Random worker reports thrown at a job: duplicates, reordering, redeliveries, late messages
after a terminal state, cancel requests; jobs with a retry policy or a start time, and the
Brain's timer queueing them (DESIGN §11) at any moment. The invariants are checked against
DESIGN §5 and §11 as written, independently of the implementation's transition table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from adapters.eventstore import InMemoryEventStore
from domain.commands import DispatchJob, FailJob, HoldJob, QueueJob, RecordStatus, RequestCancel
from domain.lifecycle import fold
from domain.specs import parse_job_spec
from services.executor import CommandExecutor, Outcome

ACTIVE = {"dispatched", "received", "running"}
WAITING_TO_RUN = {"scheduled", "retrying"}
TERMINAL = {"completed", "failed", "cancelled"}
STATUS_AFTER = {
    "JobDispatched": "dispatched", "JobReceived": "received", "JobStarted": "running",
    "JobCompleted": "completed", "JobFailed": "failed", "JobCancelled": "cancelled",
    "JobScheduled": "scheduled", "JobRetryScheduled": "retrying", "JobQueued": "dispatched",
}  # fmt: skip
KEEPS_STATUS = {
    "JobProgressed", "JobCancelRequested", "JobResultRecorded", "TransitionRejected", "JobHeld",
}  # fmt: skip
# DESIGN §5, transcribed: (from, to) pairs a job may take.
LEGAL = (
    {("new", "dispatched"), ("dispatched", "received"), ("dispatched", "running"),
     ("received", "running"), ("running", "running"), ("received", "received"),
     ("running", "received")}
    | {(a, "failed") for a in ACTIVE}
    | {(a, "cancelled") for a in ACTIVE}
    | {("running", "completed")}
    # DESIGN §11: a delayed job (its `JobDispatched`, then `JobScheduled`), a retried one
    | {("dispatched", "scheduled"), ("scheduled", "dispatched"), ("retrying", "dispatched")}
    | {(a, "retrying") for a in ACTIVE}
    | {(a, b) for a in WAITING_TO_RUN for b in ("failed", "cancelled")}
    # a job held by its concurrency key (still queued) queued for the workers (`JobQueued`)
    | {("dispatched", "dispatched")}
)  # fmt: skip

reports = st.builds(
    RecordStatus,
    status=st.sampled_from(["received", "running", "completed", "failed", "cancelled"]),
    worker_id=st.sampled_from([None, "worker-aaaa0001", "worker-bbbb0002"]),
    attempt=st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
    progress=st.sampled_from([None, "10%", "50%", "90%"]),
    result=st.sampled_from([None, "ok", {"exitCode": 0}]),
    source=st.sampled_from(["status", "result"]),
)


class JobChaos(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = InMemoryEventStore()
        self.executor = CommandExecutor(self.store)
        self.sent: list[RecordStatus] = []
        self.rejections = 0
        self.last: Outcome | None = None

    def execute(self, cmd: Any) -> None:
        self.last = self.loop.run_until_complete(self.executor.execute("job", "job-chaos", cmd))
        self.rejections += self.last.rejected is not None

    def history(self) -> list[Any]:
        return self.loop.run_until_complete(self.store.load("job", "job-chaos")).events

    @initialize(retry=st.sampled_from([None, 2, 4]), delayed=st.booleans())
    def dispatch(self, retry: int | None, delayed: bool) -> None:
        doc: dict[str, Any] = {"type": "command", "payload": {"command": "uptime"}}
        if retry is not None:
            doc["retry"] = {"maxAttempts": retry, "initialSeconds": 1}
        start = datetime(2030, 1, 1, tzinfo=UTC) if delayed else None
        self.execute(DispatchJob(spec=parse_job_spec(doc), start_at=start))

    @rule()
    def the_timer_fires(self) -> None:
        self.execute(QueueJob())

    @rule(limit=st.integers(min_value=1, max_value=3))
    def the_gate_holds_it(self, limit: int) -> None:
        """DESIGN §11: its concurrency key at its limit (the gate's QueueJob releases it)."""
        self.execute(HoldJob(concurrency_key="tenant", concurrency_limit=limit))

    @invariant()
    def only_a_queued_job_is_held_and_a_cancelled_held_job_never_runs(self) -> None:
        status, held, cancelled_held = "new", False, False
        for item in self.history():
            name = item.envelope.type
            if cancelled_held:
                assert name not in ("JobReceived", "JobStarted", "JobQueued"), name
            if name == "JobHeld":
                assert status == "dispatched" and not held, status
                held = True
            elif name == "JobCancelled" and held:
                cancelled_held = True
            elif name in ("JobQueued", "JobReceived", "JobStarted"):
                held = False
            status = STATUS_AFTER.get(name, status)

    @rule(report=reports)
    def worker_reports(self, report: RecordStatus) -> None:
        self.sent.append(report)
        self.execute(report)

    @rule(data=st.data())
    def an_old_message_arrives_again(self, data: st.DataObject) -> None:
        if self.sent:
            self.execute(data.draw(st.sampled_from(self.sent)))

    @rule(reason=st.sampled_from(["operator", None]))
    def someone_requests_cancel(self, reason: str | None) -> None:
        self.execute(RequestCancel(reason))

    @rule(reason=st.sampled_from(["max_deliveries", "stuck", "dispatch_failed"]))
    def the_brain_fails_it(self, reason: Any) -> None:
        self.execute(FailJob(reason=reason, error=f"failed: {reason}", at=datetime.now(UTC)))

    @invariant()
    def a_job_cancelled_before_its_start_never_runs(self) -> None:
        status = "new"
        for item in self.history():
            name = item.envelope.type
            if status == "cancelled-early":
                assert name not in ("JobReceived", "JobStarted", "JobQueued"), name
            elif name == "JobCancelled" and status in WAITING_TO_RUN:
                status = "cancelled-early"
            else:
                status = STATUS_AFTER.get(name, status)

    @invariant()
    def attempts_only_grow(self) -> None:
        highest = 0  # the highest attempt a worker reported or a retry was scheduled as
        for item in self.history():
            data, name = item.envelope.data, item.envelope.type
            if name == "JobRetryScheduled":
                assert data.attempt > highest, f"retry as attempt {data.attempt} after {highest}"
            if name == "JobQueued":
                assert data.attempt >= highest
            if name in ("JobReceived", "JobStarted", "JobRetryScheduled"):
                highest = max(highest, data.attempt)

    @invariant()
    def versions_are_contiguous(self) -> None:
        versions = [e.envelope.version for e in self.history()]
        assert versions == list(range(1, len(versions) + 1))

    @invariant()
    def folding_the_log_equals_the_live_state(self) -> None:
        folded = fold("job", [e.envelope.data for e in self.history()])
        assert self.last is not None and folded == self.last.state
        cached, _ = self.loop.run_until_complete(self.executor.current("job", "job-chaos"))
        assert cached == folded

    @invariant()
    def no_illegal_transition_enters_the_log(self) -> None:
        status, attempt = "new", 0
        for item in self.history():
            name = item.envelope.type
            data = item.envelope.data
            if name in KEEPS_STATUS:
                continue
            after = STATUS_AFTER[name]
            assert (status, after) in LEGAL, f"{status} -> {after} via {name}"
            if name == "JobReceived" and status in ("received", "running"):
                assert data.attempt > attempt, "redelivery without a higher attempt"
            attempt = getattr(data, "attempt", None) or attempt
            status = after

    @invariant()
    def terminal_states_absorb(self) -> None:
        seen_terminal = None
        for item in self.history():
            after = STATUS_AFTER.get(item.envelope.type)
            if seen_terminal is not None:
                assert after is None, f"{item.envelope.type} after {seen_terminal}"
            if after in TERMINAL:
                seen_terminal = after

    @invariant()
    def every_rejection_is_recorded(self) -> None:
        recorded = [e for e in self.history() if e.envelope.type == "TransitionRejected"]
        assert len(recorded) == self.rejections

    def teardown(self) -> None:
        self.loop.close()


JobChaos.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestJobChaos = JobChaos.TestCase
