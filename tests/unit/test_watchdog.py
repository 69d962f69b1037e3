"""The stuck-job watchdog on a manual clock: silence past the stuck timeout fails a job, a
worker's lease keeps it alive, a dispatched job is failed only when the queue is empty."""

from __future__ import annotations

import asyncio
import json

from adapters.eventstore import InMemoryEventStore
from domain.commands import DispatchJob, RecordStatus
from domain.specs import parse_job_spec
from services.brain.leadership import Fenced
from services.brain.watchdog import Watchdog
from services.executor import CommandExecutor
from tests.fakes.clock import ManualClock, settle
from tests.fakes.jobqueue import FakeJobQueue
from tests.fakes.topic import FakeTopic
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


def beat(*jobs: object) -> bytes:
    return json.dumps({"service": "worker", "details": {"activeJobs": list(jobs)}}).encode()


async def running_job(executor: CommandExecutor, watchdog: Watchdog, job_id: str) -> None:
    await executor.execute("job", job_id, DispatchJob(spec=SPEC), new=True)
    outcome = await executor.execute("job", job_id, RecordStatus(status="running", attempt=1))
    watchdog.observe(job_id, outcome.state)


def rig() -> tuple[Watchdog, CommandExecutor, FakeJobQueue, ManualClock, FakeTopic]:
    clock = ManualClock()
    queue = FakeJobQueue(clock=clock)
    executor = CommandExecutor(InMemoryEventStore())
    health = FakeTopic()  # the health subject: workers' heartbeats name their jobs
    watchdog = Watchdog(
        executor, queue, health, stuck_after=120.0, undeliverable_after=60.0, check_every=5.0,
        clock=clock,
    )  # fmt: skip
    return watchdog, executor, queue, clock, health


async def status(executor: CommandExecutor, job_id: str) -> tuple[str, str | None]:
    history = await executor.store.load("job", job_id)
    return history.state.status, getattr(history.events[-1].envelope.data, "reason", None)


async def test_a_silent_running_job_is_failed_stuck_and_a_leased_one_is_not() -> None:
    watchdog, executor, _, clock, health = rig()
    await running_job(executor, watchdog, "job-silent")
    await running_job(executor, watchdog, "job-leased")
    sub = await health.subscribe(watchdog.on_health)
    await clock.advance(100.0)
    await health.publish(beat("job-leased", 42))  # a lease; a bad entry is ignored
    await settle()
    await clock.advance(21.0)  # the silent job: 121 s; the leased one: 21 s
    await watchdog.check()
    assert await status(executor, "job-silent") == ("failed", "stuck")
    assert await status(executor, "job-leased") == ("running", None)
    assert watchdog.failed == 1 and set(watchdog.active) == {"job-leased"}
    await health.publish(b"{not json")  # counted and logged by the monitor, not here
    await settle()
    await clock.advance(120.0)
    await watchdog.check()
    assert await status(executor, "job-leased") == ("failed", "stuck")
    await sub.unsubscribe()


async def test_a_dispatched_job_fails_only_when_the_queue_holds_nothing() -> None:
    watchdog, executor, queue, clock, _ = rig()
    outcome = await executor.execute("job", "job-d", DispatchJob(spec=SPEC), new=True)
    watchdog.observe("job-d", outcome.state)
    queue.jobs.add("baker.jobs.dispatch", b'{"id": "job-other"}', {})  # work is waiting
    await clock.advance(61.0)
    await watchdog.check()
    assert await status(executor, "job-d") == ("dispatched", None)
    queue.jobs.messages.clear()  # nothing left for any worker: job-d can never be delivered
    await watchdog.check()
    assert await status(executor, "job-d") == ("failed", "stuck")
    failed = (await executor.store.load("job", "job-d")).events[-1].envelope.data
    error = getattr(failed, "error", "")
    assert "never delivered" in error


async def test_jobs_unfinished_in_the_log_are_watched_from_the_start() -> None:
    watchdog, executor, _, clock, _ = rig()
    await executor.execute("job", "job-old", DispatchJob(spec=SPEC), new=True)
    await executor.execute("job", "job-old", RecordStatus(status="running", attempt=1))
    await running_job(executor, watchdog, "job-done")
    await executor.execute("job", "job-done", RecordStatus(status="completed"))
    watchdog.active.clear()  # a Brain starting afresh: it knows only the log
    assert await watchdog.seed() == 1
    assert watchdog.active["job-old"].status == "running"
    await clock.advance(121.0)
    await watchdog.check()
    assert await status(executor, "job-old") == ("failed", "stuck")


async def test_a_fenced_brain_leaves_stuck_jobs_to_the_leader() -> None:
    class NotLeading:
        def check(self, aggregate: str) -> int | None:
            if aggregate == "job":
                raise Fenced("the leader is brain-b")
            return None

    watchdog, executor, queue, clock, _ = rig()
    await running_job(executor, watchdog, "job-f")
    fenced = CommandExecutor(executor.store, fence=NotLeading())
    watchdog = Watchdog(fenced, queue, None, stuck_after=120.0, clock=clock)
    watchdog.observe("job-f", (await executor.current("job", "job-f"))[0])
    await clock.advance(121.0)
    await watchdog.check()  # refused by the fence: no error, nothing recorded
    assert await status(executor, "job-f") == ("running", None)
    assert watchdog.failed == 0


async def test_the_run_loop_checks_every_check_every_seconds_until_stopped() -> None:
    watchdog, executor, _, clock, health = rig()
    await running_job(executor, watchdog, "job-r")
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog.run(stop))
    await until(lambda: health.handlers)  # subscribed, seeded, sleeping
    for _ in range(24):  # 120 s in checks of 5 s: not yet stuck
        await clock.advance(5.0)
    assert await status(executor, "job-r") == ("running", None)
    await clock.advance(5.0)
    await until(lambda: watchdog.failed == 1)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert health.handlers == []  # unsubscribed
