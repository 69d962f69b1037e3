"""Delayed and retried jobs (DESIGN §11) on a manual clock: the backoff's arithmetic, the
lifecycle's decisions, and the Brain's timer queueing each job at its time, also when a new
Brain rebuilds it from the log, and never a job cancelled before then."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.commands import DispatchJob, FailJob, QueueJob, RecordStatus, RequestCancel
from domain.errors import FieldError
from domain.events import JobFailed, JobQueued, JobRetryScheduled
from domain.lifecycle import decide, evolve
from domain.lifecycle.job import JobState
from domain.lifecycle.timing import backoff
from domain.specs import parse_job_spec
from services.brain.dispatcher import Dispatcher
from services.brain.leadership import Fenced
from services.brain.watchdog import Watchdog
from services.executor import CommandExecutor
from tests.fakes.clock import FakeClock
from tests.fakes.jobqueue import FakeJobQueue
from tests.polling import until

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(**extra: Any) -> Any:
    return parse_job_spec({"type": "command", "payload": {"command": "false"}, **extra})


def test_backoff_multiplies_from_the_initial_delay_up_to_the_cap() -> None:
    policy = {"maxAttempts": 9, "initialSeconds": 2, "multiplier": 3, "maxSeconds": 20}
    assert [backoff(policy, n) for n in range(1, 6)] == [2, 6, 18, 20, 20]
    assert backoff({"initialSeconds": 0, "maxSeconds": 0}, 3) == 0
    assert backoff({"initialSeconds": 1, "multiplier": 100, "maxSeconds": 60}, 10_000) == 60


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"retry": {"maxAttempts": 0}}, "retry.maxAttempts"),
        ({"retry": {"initialSeconds": 1}}, "retry.maxAttempts"),
        ({"retry": {"maxAttempts": 3, "multiplier": 0.5}}, "retry.multiplier"),
        ({"retry": {"maxAttempts": 3, "initialSeconds": 9, "maxSeconds": 1}}, "retry"),
        ({"runAt": "2026-01-01T00:00:00"}, "runAt"),
        ({"runAt": "tomorrow"}, "runAt"),
        ({"delaySeconds": -1}, "delaySeconds"),
        ({"delaySeconds": 1, "runAt": "2026-01-01T00:00:00Z"}, "delaySeconds"),
    ],
)
def test_a_bad_retry_policy_or_start_time_names_its_field(
    extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(FieldError) as caught:
        spec(**extra)
    assert caught.value.field == field


def play(state: JobState, *cmds: Any) -> tuple[JobState, list[Any]]:
    """Decide and fold each command in turn; every decided event, in order."""
    events: list[Any] = []
    for cmd in cmds:
        decided = decide("job", state, cmd)
        assert isinstance(decided, list), decided
        events += decided
        for event in decided:
            state = evolve("job", state, event)
    return state, events


def test_a_failure_with_attempts_left_retries_with_backoff_and_the_last_one_is_final() -> None:
    policy = {"maxAttempts": 3, "initialSeconds": 5, "multiplier": 2, "maxSeconds": 60}
    state, _ = play(JobState(), DispatchJob(spec=spec(retry=policy)))
    state, events = play(
        state,
        RecordStatus(status="received", attempt=1),
        RecordStatus(status="failed", attempt=1, error="exit 1", at=T0),
        RecordStatus(status="failed", attempt=1, error="exit 1", source="result"),  # no-op
    )
    retry = events[-1]
    assert isinstance(retry, JobRetryScheduled) and state.status == "retrying"
    assert (retry.attempt, retry.delay_seconds, retry.reason) == (2, 5, "error")
    assert retry.retry_at == T0 + timedelta(seconds=5) == state.due_at
    state, events = play(state, QueueJob())
    assert events == [JobQueued(attempt=2, cause="retry")] and state.status == "dispatched"
    # a late report of the failed attempt is stale: it neither fails nor retries the job again
    assert play(state, RecordStatus(status="failed", attempt=1, error="late"))[1] == []
    state, events = play(
        state,
        RecordStatus(status="received", attempt=2),
        RecordStatus(status="failed", attempt=2, error="exit 1", at=T0),
    )
    assert isinstance(events[-1], JobRetryScheduled) and events[-1].delay_seconds == 10
    assert events[-1].attempt == 3
    state, events = play(
        state,
        QueueJob(),
        RecordStatus(status="running", attempt=3),
        RecordStatus(status="failed", attempt=3, error="exit 1", at=T0),
    )
    assert isinstance(events[-1], JobFailed) and state.status == "failed" and state.retries == 2


@pytest.mark.parametrize("reason", ["budget_exceeded", "dispatch_failed", "approval_timeout"])
def test_failures_a_retry_cannot_help_are_final(reason: Any) -> None:
    state, _ = play(JobState(), DispatchJob(spec=spec(retry={"maxAttempts": 5})))
    state, _ = play(state, RecordStatus(status="running", attempt=1))
    state, events = play(state, FailJob(reason=reason, error="no", at=T0))
    assert [type(e) for e in events] == [JobFailed] and state.status == "failed"


def test_the_brain_failing_a_stuck_job_retries_it_and_a_cancel_request_prevents_retries() -> None:
    state, _ = play(JobState(), DispatchJob(spec=spec(retry={"maxAttempts": 5})))
    state, _ = play(state, RecordStatus(status="running", attempt=1))
    stuck, events = play(state, FailJob(reason="stuck", error="silent", at=T0))
    assert isinstance(events[-1], JobRetryScheduled) and stuck.status == "retrying"
    asked, _ = play(state, RequestCancel())
    assert play(asked, FailJob(reason="stuck", error="silent"))[0].status == "failed"


def test_cancelling_a_scheduled_or_retrying_job_cancels_it_at_once() -> None:
    state, events = play(JobState(), DispatchJob(spec=spec(), start_at=T0))
    assert [e.type_name() for e in events] == ["JobDispatched", "JobScheduled"]
    assert state.status == "scheduled" and state.due_at == T0
    cancelled, events = play(state, RequestCancel(reason="not needed"))
    assert cancelled.status == "cancelled" and len(events) == 2
    assert play(cancelled, QueueJob())[1] == []  # the timer finds it terminal: nothing queued


# --- the Brain's timer ------------------------------------------------------------------


def rig(
    store: InMemoryEventStore | None = None, queue: FakeJobQueue | None = None
) -> tuple[Dispatcher, Watchdog, FakeJobQueue, FakeClock, InMemoryEventStore]:
    clock = FakeClock()
    store = store or InMemoryEventStore()
    queue = queue or FakeJobQueue(clock=clock)
    executor = CommandExecutor(store)
    watchdog = Watchdog(executor, queue, check_every=5.0, clock=clock)
    dispatcher = Dispatcher(
        executor, queue, on_outcome=lambda job, out: watchdog.observe(job, out.state)
    )
    return dispatcher, watchdog, queue, clock, store


def queued(queue: FakeJobQueue) -> list[tuple[str, str]]:
    """(job id, Nats-Msg-Id) of every dispatch message in the queue."""
    return [
        (json.loads(m.data)["id"], m.headers["Nats-Msg-Id"])
        for m in queue.jobs.messages.values()
        if m.subject == "baker.jobs.dispatch"
    ]


async def types(store: InMemoryEventStore, job_id: str) -> list[str]:
    return [e.envelope.type for e in (await store.load("job", job_id)).events]


async def test_a_delayed_job_is_queued_at_its_time_and_a_cancelled_one_never() -> None:
    dispatcher, watchdog, queue, clock, store = rig()
    stop = asyncio.Event()
    runner = asyncio.create_task(watchdog.run(stop))
    late = await dispatcher.dispatch(spec(delaySeconds=30))
    off = await dispatcher.dispatch(spec(delaySeconds=10))
    assert late.status == "scheduled" and queued(queue) == []
    await dispatcher.cancel(off.job_id)
    await clock.advance(29.0)
    assert queued(queue) == []
    await clock.advance(2.0)
    await until(lambda: queued(queue) == [(late.job_id, late.job_id)])
    assert await types(store, late.job_id) == ["JobDispatched", "JobScheduled", "JobQueued"]
    assert await types(store, off.job_id) == [
        "JobDispatched", "JobScheduled", "JobCancelRequested", "JobCancelled",
    ]  # fmt: skip
    stop.set()
    await runner


async def test_a_new_brain_rebuilds_its_timers_from_the_log_and_queues_each_job_once() -> None:
    dispatcher, _, queue, clock, store = rig()
    delayed = await dispatcher.dispatch(spec(delaySeconds=60))
    failing = await dispatcher.dispatch(spec(retry={"maxAttempts": 2, "initialSeconds": 45}))
    executor = dispatcher.executor
    for msg in ("received", "failed"):
        await executor.execute(
            "job", failing.job_id,
            RecordStatus(status=msg, attempt=1, error="exit 1", at=clock.wall()),  # type: ignore[arg-type]
        )  # fmt: skip
    queue.jobs.messages.clear()  # the first attempt's message was taken and acknowledged
    # The first Brain stops; another starts on the same log (its own clock, same wall time).
    _, watchdog, _, _, _ = rig(store, queue)
    watchdog._clock = watchdog.timer._clock = clock
    stop = asyncio.Event()
    runner = asyncio.create_task(watchdog.run(stop))
    await until(lambda: set(watchdog.timer.due) == {delayed.job_id, failing.job_id})
    await clock.advance(46.0)
    await until(lambda: queued(queue) == [(failing.job_id, f"{failing.job_id}:2")])
    await clock.advance(15.0)
    await until(lambda: len(queued(queue)) == 2)
    assert queued(queue)[1] == (delayed.job_id, delayed.job_id)
    assert (await types(store, failing.job_id))[-2:] == ["JobRetryScheduled", "JobQueued"]
    await clock.advance(60.0)
    assert len(queued(queue)) == 2 and watchdog.timer.due == {}
    stop.set()
    await runner


async def test_a_brain_that_no_longer_leads_queues_nothing() -> None:
    dispatcher, _, queue, clock, store = rig()
    job = await dispatcher.dispatch(spec(delaySeconds=5))

    class Lost:
        def check(self, aggregate: str) -> int | None:  # `Leadership.check` once another leads
            raise Fenced(f"brain-a may not append {aggregate} events: the leader is brain-b")

    deposed = Watchdog(CommandExecutor(store, fence=Lost()), queue, clock=clock)
    await deposed.seed()
    assert set(deposed.timer.due) == {job.job_id}
    await clock.advance(6.0)
    assert await deposed.timer.release_due() == 0
    assert queued(queue) == [] and await types(store, job.job_id) == [
        "JobDispatched", "JobScheduled",
    ]  # fmt: skip


def test_a_retry_that_fails_before_any_worker_reports_runs_as_the_next_attempt() -> None:
    """Found by the chaos machine: a retry given up on undelivered (max_deliveries) was
    scheduled again as the same attempt, so its message id repeated."""
    state = JobState()
    retry = {"maxAttempts": 4, "initialSeconds": 0}
    attempts = []
    for cmd in (
        DispatchJob(spec=spec(retry=retry)),
        FailJob(reason="max_deliveries", error="gave up", at=T0),
        QueueJob(),
        FailJob(reason="max_deliveries", error="gave up", at=T0),
    ):
        out = decide("job", state, cmd)
        assert isinstance(out, list), out
        for event in out:
            state = evolve("job", state, event)
            if isinstance(event, JobRetryScheduled):
                attempts.append(event.attempt)
    assert attempts == [2, 3]
