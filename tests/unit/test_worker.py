"""The worker over the in-memory job queue and a manual clock (no server, no processes): what it
reports and in which order, its concurrency, in-progress acks, cancels, crashes, shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.executors.base import Execution, StepJournal
from domain.wire import DispatchMessage, decode_result, decode_status
from services.worker.executors import ExecutorSettings
from services.worker.worker import Worker, WorkerSettings
from tests.fakes.clock import FakeClock, settle
from tests.fakes.jobqueue import FakeJobQueue
from tests.polling import until

ACK_WAIT = 30.0


class Runner:
    """Runs jobs as told: each waits for its gate (`release`), then succeeds; a command
    `boom` crashes, `fail` fails. Cancellation is seen and re-raised, as executors do."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []

    def release(self, job_id: str) -> None:
        self.gates.setdefault(job_id, asyncio.Event()).set()

    async def __call__(
        self,
        dispatch: DispatchMessage,
        progress: Callable[[str], Awaitable[None]],
        _journal: StepJournal,
    ) -> Execution:
        self.started.append(dispatch.id)
        command = dispatch.payload.get("command")
        if command == "boom":
            raise RuntimeError("a bug in the executor")
        try:
            await self.gates.setdefault(dispatch.id, asyncio.Event()).wait()
        except asyncio.CancelledError:
            self.cancelled.append(dispatch.id)
            raise
        await progress("half way")
        if command == "fail":
            return Execution(ok=False, error="exit 1")
        return Execution(ok=True, result={"out": dispatch.id})


@dataclass
class Rig:
    queue: FakeJobQueue
    clock: FakeClock
    runner: Runner
    worker: Worker
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def dispatch(self, job_id: str, command: str = "echo hi") -> int:
        msg = DispatchMessage(
            id=job_id, type="command", payload={"command": command},
            reply_to=f"baker.jobs.status.{job_id}", created_at=datetime.now(UTC),
        )  # fmt: skip
        return await self.queue.dispatch(msg, {})

    def reports(self, job_id: str) -> list[tuple[str, str]]:
        """(kind, status) of every report published for the job, in order."""
        out: list[tuple[str, str]] = []
        for msg in self.queue.published:
            _, _, kind, *rest = msg.subject.split(".")
            if rest == [job_id]:
                decode = decode_status if kind == "status" else decode_result
                out.append((kind, decode(msg.data).status))
        return out

    def queued(self) -> int:
        """Jobs in the queue (delivered or not), reports left out."""
        return sum(m.subject == "baker.jobs.dispatch" for m in self.queue.jobs.messages.values())

    async def stopped(self) -> None:
        self.stop.set()
        await self.clock.advance(1.0)  # the fetch in progress ends
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


def done(job_id: str) -> list[tuple[str, str]]:
    return [
        ("status", "received"), ("status", "running"), ("status", "running"),
        ("result", "completed"),
    ]  # fmt: skip


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock()
    queue = FakeJobQueue(clock=clock, ack_wait=ACK_WAIT, max_deliver=3)
    runner = Runner()
    settings = WorkerSettings(
        executors=ExecutorSettings(allowed_commands=()), concurrency=2, ack_wait=ACK_WAIT,
        grace=10.0, crash_nak_delay=5.0,
    )  # fmt: skip
    worker = Worker(queue.work_source(), queue, queue, settings, run=runner, clock=clock,
                    worker_id="worker-t")  # fmt: skip
    r = Rig(queue, clock, runner, worker)
    r.task = asyncio.create_task(worker.run(r.stop))
    yield r
    if not r.task.done():
        for job_id in list(runner.gates):
            runner.release(job_id)
        await r.stopped()


async def test_a_job_is_reported_in_order_and_acked(rig: Rig) -> None:
    await rig.dispatch("job-1")
    await until(lambda: rig.runner.started == ["job-1"])
    rig.runner.release("job-1")
    await until(lambda: rig.worker.stats.completed == 1)
    assert rig.reports("job-1") == done("job-1")
    first = decode_status(rig.queue.published[1].data)
    assert (first.worker_id, first.attempt) == ("worker-t", 1)
    result = decode_result(rig.queue.published[4].data)
    assert result.result == {"out": "job-1"} and result.duration_ms == 0  # the clock stood
    await until(lambda: rig.queued() == 0)  # acked: gone from the queue
    assert rig.worker.running == {}


async def test_a_failed_job_is_reported_failed_and_acked(rig: Rig) -> None:
    await rig.dispatch("job-f", "fail")
    rig.runner.release("job-f")
    await until(lambda: rig.worker.stats.failed == 1)
    assert rig.reports("job-f")[-2:] == [("status", "running"), ("result", "failed")]
    await until(lambda: rig.queued() == 0)


async def test_it_never_runs_more_jobs_than_its_concurrency(rig: Rig) -> None:
    for i in range(5):
        await rig.dispatch(f"job-c{i}")
    await until(lambda: len(rig.runner.started) == 2)
    await settle()
    assert len(rig.worker.running) == 2 and await rig.queue.depth() == (3, 2)
    rig.runner.release("job-c0")
    await until(lambda: len(rig.runner.started) == 3)
    await settle()
    assert len(rig.worker.running) == 2
    for i in range(5):
        rig.runner.release(f"job-c{i}")
    await until(lambda: rig.worker.stats.completed == 5)


async def test_a_long_job_is_kept_with_in_progress_acks_not_redelivered(rig: Rig) -> None:
    seq = await rig.dispatch("job-long")
    await until(lambda: rig.runner.started == ["job-long"])
    for _ in range(12):  # four ack-waits in steps of a sixth of one
        await rig.clock.advance(ACK_WAIT / 6)
    assert rig.queue.workers.pending[seq].delivered == 1  # still the first delivery
    assert await rig.queue.depth() == (0, 1)
    rig.runner.release("job-long")
    await until(lambda: rig.worker.stats.completed == 1)
    assert rig.runner.started == ["job-long"]


async def test_a_cancel_signal_stops_the_running_job(rig: Rig) -> None:
    await rig.dispatch("job-k")
    await until(lambda: rig.runner.started == ["job-k"])
    await rig.queue.signal_cancel("job-k", "not needed")
    await until(lambda: rig.worker.stats.cancelled == 1)
    assert rig.runner.cancelled == ["job-k"]
    assert rig.reports("job-k")[-2:] == [("status", "running"), ("result", "cancelled")]
    result = next(m for m in rig.queue.published if m.subject == "baker.jobs.result.job-k")
    assert "not needed" in (decode_result(result.data).error or "")
    await until(lambda: rig.queued() == 0)


async def test_a_job_cancelled_before_it_started_is_never_run(rig: Rig) -> None:
    await rig.queue.signal_cancel("job-early", "changed my mind")
    await settle()
    await rig.dispatch("job-early")
    await until(lambda: rig.worker.stats.cancelled == 1)
    assert rig.runner.started == []
    assert rig.reports("job-early") == [("result", "cancelled")]


async def test_a_cancel_signal_missed_live_is_found_by_the_keep_alive(rig: Rig) -> None:
    await rig.dispatch("job-m")
    await until(lambda: rig.runner.started == ["job-m"])
    rig.queue.cancels["job-m"] = "missed once"  # in the bucket, but never heard live
    await rig.clock.advance(ACK_WAIT / 6)
    assert rig.worker.stats.cancelled == 0  # not yet: held for less than a third of ack-wait
    await rig.clock.advance(ACK_WAIT / 6)
    await until(lambda: rig.worker.stats.cancelled == 1)
    assert rig.runner.cancelled == ["job-m"]


async def test_a_crash_of_ours_hands_the_job_back_after_the_crash_delay(rig: Rig) -> None:
    seq = await rig.dispatch("job-boom", "boom")
    await until(lambda: rig.worker.stats.crashed == 1)
    assert rig.runner.started == ["job-boom"]
    await rig.clock.advance(4.9)
    assert rig.runner.started == ["job-boom"]  # the nak's delay is not over
    await rig.clock.advance(0.2)
    await until(lambda: rig.worker.stats.crashed == 2)  # redelivered, crashed again
    assert rig.queue.workers.pending[seq].delivered == 2
    statuses = [json.loads(m.data).get("attempt") for m in rig.queue.published[1:]]
    assert statuses == [1, 1, 2, 2]  # received and running of each attempt


async def test_a_malformed_dispatch_is_termed_and_reported_failed(rig: Rig) -> None:
    rig.queue.jobs.add("baker.jobs.dispatch", b'{"id": "job-bad", "type": "shell"}', {})
    rig.queue.jobs.add("baker.jobs.dispatch", b"\xff no id at all", {})
    await until(lambda: rig.worker.stats.malformed == 2)
    await until(lambda: rig.queued() == 0)  # both termed
    assert rig.reports("job-bad") == [("result", "failed")]
    assert rig.runner.started == []


async def test_shutdown_lets_jobs_finish_within_the_grace_then_hands_the_rest_back(
    rig: Rig,
) -> None:
    seq_quick = await rig.dispatch("job-quick")
    seq_slow = await rig.dispatch("job-slow")
    await until(lambda: len(rig.runner.started) == 2)
    rig.stop.set()
    await rig.clock.advance(1.0)  # the fetch in progress ends: now waiting for the two jobs
    rig.runner.release("job-quick")
    await until(lambda: rig.worker.stats.completed == 1)
    assert rig.task is not None and not rig.task.done()
    await rig.clock.advance(10.0)  # the grace period is over: the slow job is handed back
    await asyncio.wait_for(rig.task, 10)
    assert rig.runner.cancelled == ["job-slow"]
    assert seq_quick not in rig.queue.jobs.messages
    assert rig.queue.workers.pending[seq_slow].ready_at is not None  # nak'd, waiting again
    assert rig.reports("job-slow") == [("status", "received"), ("status", "running")]
    assert rig.queue.closed == 1  # the worker let go of its queue


async def test_the_heartbeat_names_the_running_jobs() -> None:
    clock = FakeClock()
    queue = FakeJobQueue(clock=clock)
    runner = Runner()
    beats: list[dict[str, Any]] = []

    async def heartbeat(
        instance: str, details: Callable[[], dict[str, Any]], stop: asyncio.Event,
        refresh: Any = None,
    ) -> None:  # fmt: skip
        while not stop.is_set():
            beats.append({"instance": instance, **details()})
            await clock.sleep(1.0)

    settings = WorkerSettings(executors=ExecutorSettings(allowed_commands=()), concurrency=1)
    worker = Worker(queue.work_source(), queue, queue, settings, run=runner, clock=clock,
                    heartbeat=heartbeat, worker_id="worker-h")  # fmt: skip
    rig = Rig(queue, clock, runner, worker)
    rig.task = asyncio.create_task(worker.run(rig.stop))
    await rig.dispatch("job-h")
    await until(lambda: runner.started == ["job-h"])
    await clock.advance(1.0)
    assert beats[-1]["instance"] == "worker-h" and beats[-1]["activeJobs"] == ["job-h"]
    runner.release("job-h")
    await until(lambda: worker.stats.completed == 1)
    await clock.advance(1.0)
    assert beats[-1]["activeJobs"] == [] and beats[-1]["completed"] == 1
    await rig.stopped()
