"""Task deadlines on a fake clock (DESIGN §5: a 30 min hard limit, then `timed_out`), with the
task service, a launcher and the runners' queue all in memory: nothing waits on real time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from adapters.eventstore import InMemoryEventStore
from domain.tasks import LaunchReply, LaunchRequest, TaskResultMessage, result_subject
from services.executor import CommandExecutor
from services.tasks.launcher import BaseLauncher
from services.tasks.service import TaskService
from tests.fakes.bus import FakeBus
from tests.fakes.clock import FakeClock
from tests.fakes.jobqueue import FakeConsumer, FakeStream
from tests.polling import until
from tests.support.monitor import types

SCRIPT = {"goal": "echo hi", "mode": "script"}


class StubLauncher(BaseLauncher):
    """Accepts every launch and runs nothing (its runner would be silent)."""

    name = "stub"

    async def start(self, request: LaunchRequest) -> LaunchReply:
        return LaunchReply(ok=True, launcher=self.name, runner_id=f"stub-{request.task_id}")

    async def stop(self, task_id: str) -> str | None:
        return "stopped" if task_id in self.instructions else None


@dataclass
class World:
    clock: FakeClock
    bus: FakeBus
    store: InMemoryEventStore
    queue: FakeStream  # BAKER_TASKS: the runners' messages
    service: TaskService
    stop: asyncio.Event

    async def status(self, task_id: str) -> str:
        return str((await self.store.load("task", task_id)).state.status)

    async def step(self, seconds: float) -> None:
        """Move the clock on one watchdog round at a time, each round's check finished."""
        for _ in range(round(seconds / self.service.check_every)):
            await self._round(self.service.stats.checks + 1)

    async def _round(self, number: int) -> None:
        await self.clock.advance(self.service.check_every)
        await until(lambda: self.service.stats.checks >= number, f"deadline round {number}")


@contextlib.asynccontextmanager
async def world(
    *, launcher: bool = True, store: InMemoryEventStore | None = None
) -> AsyncIterator[World]:
    clock = FakeClock()
    bus, store = FakeBus(clock), store or InMemoryEventStore()
    queue = FakeStream(clock, lambda *_: None)
    inbox = FakeConsumer(queue, "brain-tasks", lambda s: s.startswith("baker.tasks."), ack_wait=30)
    service = TaskService(bus, CommandExecutor(store), inbox, check_every=1.0, clock=clock)
    stop = asyncio.Event()
    runs = [asyncio.create_task(service.run(stop))]
    if launcher:
        stub = StubLauncher(bus, grace=2.0, clock=clock)
        runs.append(asyncio.create_task(stub.run(stop)))
        await until(stub.ready.is_set, "the launcher listens")
    try:
        yield World(clock, bus, store, queue, service, stop)
    finally:
        stop.set()
        await clock.advance(1.0)  # the service's fetch waits on the clock: let it end
        await asyncio.wait_for(asyncio.gather(*runs), 10)


async def test_a_silent_task_times_out_at_its_deadline_and_not_before() -> None:
    async with world() as w:
        status, body = await w.service.launch({**SCRIPT, "timeoutSeconds": 60})
        assert status == 202
        launched: Any = (await w.store.load("task", body["id"])).events[0].envelope.data
        assert launched.deadline_at == w.clock.wall() + timedelta(seconds=60)
        await w.step(59)
        assert await w.status(body["id"]) == "launched"  # a second before its deadline
        await w.step(1)
        history = await w.store.load("task", body["id"])
        assert types(history) == ["TaskLaunched", "TaskTimedOut"]
        assert history.events[-1].envelope.data.timeout_seconds == 60  # type: ignore[attr-defined]
        assert w.service.stats.timed_out == 1 and w.service.stats.watching == 0


async def test_the_hard_limit_is_thirty_minutes() -> None:
    async with world() as w:
        status, body = await w.service.launch(SCRIPT)  # no timeout given: the limit applies
        assert status == 202
        await w.step(1799)
        assert await w.status(body["id"]) == "launched"
        await w.step(1)
        assert await w.status(body["id"]) == "timed_out"
        too_long, answer = await w.service.launch({**SCRIPT, "timeoutSeconds": 1801})
        assert too_long == 400 and answer["error"].startswith("timeoutSeconds: ")


async def test_a_task_that_finishes_in_time_is_not_timed_out() -> None:
    async with world() as w:
        _, body = await w.service.launch({**SCRIPT, "timeoutSeconds": 60})
        await w.step(30)
        result = TaskResultMessage(task_id=body["id"], status="completed", result={"ok": 1})
        w.queue.add(result_subject(body["id"]), result.encode(), {})
        await until(lambda: not w.queue.messages, "the result ingested")
        assert await w.status(body["id"]) == "completed"
        await w.step(120)
        assert types(await w.store.load("task", body["id"]))[-1] == "TaskCompleted"
        assert w.service.stats.timed_out == 0 and w.service.stats.watching == 0


async def test_a_restarted_service_times_out_an_unfinished_task_at_its_recorded_deadline() -> None:
    store = InMemoryEventStore()
    async with world(store=store) as first:
        _, body = await first.service.launch({**SCRIPT, "timeoutSeconds": 600})
        deadline = first.clock.wall() + timedelta(seconds=600)
    async with world(store=store, launcher=False) as second:
        await until(lambda: second.service.stats.watching == 1, "the task restored")
        second.clock.set_wall(deadline - timedelta(seconds=300))  # restarted halfway through
        await second.step(299)
        assert await second.status(body["id"]) == "launched"
        await second.step(1)
        assert await second.status(body["id"]) == "timed_out"


async def test_no_launcher_fails_the_task_after_a_second_of_retries() -> None:
    async with world(launcher=False) as w:
        launching = asyncio.create_task(w.service.launch(SCRIPT))
        await w.clock.sleepers(2)  # the watchdog and the retry's pause
        await w.clock.advance(0.9)
        assert not launching.done()  # still retrying: a launcher may be starting
        await w.clock.advance(0.3)  # past the second (its retries every 0.1 s add up inexactly)
        status, body = await launching
        assert status == 503 and "no task launcher is running" in body["error"]
        assert types(await w.store.load("task", body["id"])) == ["TaskLaunched", "TaskFailed"]


async def test_a_launcher_that_never_answers_fails_the_task_after_the_launch_timeout() -> None:
    async with world(launcher=False) as w:

        async def silent(msg: Any) -> None:
            return None

        await w.bus.subscribe("baker.tasks.launch", silent, queue="launchers")
        launching = asyncio.create_task(w.service.launch(SCRIPT))
        await w.clock.sleepers(2)  # the watchdog and the request's timeout
        await w.clock.advance(4.9)
        assert not launching.done()
        await w.clock.advance(0.1)
        status, body = await launching
        assert status == 503 and "no task launcher answered within 5s" in body["error"]
