"""The stuck-job watchdog on a manual clock: silence past the stuck timeout fails a job, a
worker's lease keeps it alive; a dispatched job with no message in the queue is queued again
when the Brain starts, and failed when its message goes missing later."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from adapters.eventstore import InMemoryEventStore
from domain.commands import DispatchJob, RecordStatus
from domain.specs import parse_job_spec
from domain.wire import DispatchMessage
from services.brain.leadership import Fenced
from services.brain.watchdog import Watchdog
from services.executor import CommandExecutor
from services.heartbeat import HEALTH_SUBJECT
from services.topic import BusTopic
from tests.fakes.bus import FakeBus
from tests.fakes.clock import FakeClock, settle
from tests.fakes.jobqueue import FakeJobQueue
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


def job_message(job_id: str) -> DispatchMessage:
    return DispatchMessage(
        id=job_id, type="command", payload={"command": "echo hi"},
        reply_to=f"baker.jobs.status.{job_id}", created_at=datetime.now(UTC),
    )  # fmt: skip


def beat(*jobs: object) -> bytes:
    return json.dumps({"service": "worker", "details": {"activeJobs": list(jobs)}}).encode()


async def running_job(executor: CommandExecutor, watchdog: Watchdog, job_id: str) -> None:
    await executor.execute("job", job_id, DispatchJob(spec=SPEC), new=True)
    outcome = await executor.execute("job", job_id, RecordStatus(status="running", attempt=1))
    watchdog.observe(job_id, outcome.state)


def rig() -> tuple[Watchdog, CommandExecutor, FakeJobQueue, FakeClock, BusTopic]:
    clock = FakeClock()
    queue = FakeJobQueue(clock=clock)
    executor = CommandExecutor(InMemoryEventStore())
    health = BusTopic(FakeBus(), HEALTH_SUBJECT)  # workers' heartbeats name their jobs
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


async def recorded(
    executor: CommandExecutor, watchdog: Watchdog, job_id: str, spec: Any = SPEC
) -> None:
    """A job its Brain recorded (`JobDispatched`) and then never queued: it stopped."""
    outcome = await executor.execute(
        "job", job_id, DispatchJob(spec=spec), new=True, trace_id="ab" * 16
    )
    watchdog.observe(job_id, outcome.state)


def dispatches(queue: FakeJobQueue) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    return {
        json.loads(m.data)["id"]: (json.loads(m.data), m.headers)
        for m in queue.jobs.messages.values()
        if m.subject == "baker.jobs.dispatch"
    }


async def test_jobs_recorded_but_never_queued_are_queued_again_at_start() -> None:
    watchdog, executor, queue, _, _ = rig()
    await recorded(executor, watchdog, "job-lost")
    await recorded(executor, watchdog, "job-waiting")
    await queue.dispatch(job_message("job-waiting"), {})  # queued before its Brain stopped
    await recorded(executor, watchdog, "job-reported")
    queue.jobs.add("baker.jobs.status.job-reported", b"{}", {})  # taken; its report not ingested

    await watchdog.requeue()

    queued = dispatches(queue)
    assert set(queued) == {"job-lost", "job-waiting"}
    doc, headers = queued["job-lost"]
    assert doc["type"] == "command" and doc["payload"] == {"command": "echo hi"}
    assert doc["replyTo"] == "baker.jobs.status.job-lost"
    assert headers["Nats-Msg-Id"] == "job-lost"  # a copy still in the window is not queued twice
    assert headers["traceparent"].startswith("00-" + "ab" * 16 + "-")
    assert await status(executor, "job-lost") == ("dispatched", None)
    await watchdog.requeue()
    assert len([m for m in queue.jobs.messages.values() if b"job-lost" in m.data]) == 1


async def test_a_job_whose_recorded_payload_was_masked_is_failed_not_queued() -> None:
    watchdog, executor, queue, _, _ = rig()
    secret = parse_job_spec({"type": "command", "payload": {"command": "API_TOKEN=s3cr3t echo hi"}})
    await recorded(executor, watchdog, "job-secret", secret)
    await watchdog.requeue()
    assert dispatches(queue) == {}
    assert await status(executor, "job-secret") == ("failed", "dispatch_failed")
    failed = (await executor.store.load("job", "job-secret")).events[-1].envelope.data
    assert "secrets" in getattr(failed, "error", "") and "s3cr3t" not in str(failed)


async def test_a_dispatched_job_whose_message_left_the_queue_is_failed() -> None:
    watchdog, executor, queue, clock, _ = rig()
    await recorded(executor, watchdog, "job-d")
    await queue.dispatch(job_message("job-d"), {})
    await clock.advance(61.0)
    await watchdog.check()  # silent, but its message waits in the queue: left alone
    assert await status(executor, "job-d") == ("dispatched", None)
    queue.jobs.messages.clear()  # expired unread, or removed by hand
    await watchdog.check()
    assert await status(executor, "job-d") == ("failed", "stuck")
    failed = (await executor.store.load("job", "job-d")).events[-1].envelope.data
    assert "never delivered" in getattr(failed, "error", "")
    assert dispatches(queue) == {}  # not queued again: only a Brain that starts does that


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
    bus = health.bus
    await running_job(executor, watchdog, "job-r")
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog.run(stop))
    await until(lambda: bus.subscribed(HEALTH_SUBJECT))  # subscribed, seeded, sleeping
    for _ in range(24):  # 120 s in checks of 5 s: not yet stuck
        await clock.advance(5.0)
    assert await status(executor, "job-r") == ("running", None)
    await clock.advance(5.0)
    await until(lambda: watchdog.failed == 1)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert bus.subscribed(HEALTH_SUBJECT) == 0  # unsubscribed
