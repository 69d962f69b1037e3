"""Max-deliveries advisories over the in-memory job queue: the job that no worker completed is
failed `max_deliveries` once, and its message removed; a fenced Brain hands the advisory back."""

from __future__ import annotations

import asyncio

from adapters.eventstore import InMemoryEventStore
from domain.specs import parse_job_spec
from services.brain.advisories import MaxDeliveries
from services.brain.dispatcher import Dispatcher
from services.brain.leadership import Fenced
from services.executor import CommandExecutor
from tests.fakes.clock import FakeClock
from tests.fakes.jobqueue import FakeJobQueue
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


async def given_up(queue: FakeJobQueue, executor: CommandExecutor) -> str:
    """A job dispatched and nak'd by workers until the consumer gives up on it."""
    done = await Dispatcher(executor, queue).dispatch(SPEC)
    for _ in range(queue.workers.max_deliver):
        [delivery] = await queue.workers.fetch(1, wait=0)
        delivery.nak()
    assert await queue.workers.fetch(1, wait=0) == []  # given up: an advisory now
    return done.job_id


async def test_a_given_up_job_is_failed_once_and_its_message_removed() -> None:
    clock = FakeClock()
    queue = FakeJobQueue(clock=clock, max_deliver=2)
    executor = CommandExecutor(InMemoryEventStore())
    job_id = await given_up(queue, executor)
    advisories = MaxDeliveries(executor, queue.advisories(), clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(advisories.run(stop))
    await until(lambda: advisories.recorded == 1)
    history = await executor.store.load("job", job_id)
    assert [e.envelope.type for e in history.events] == ["JobDispatched", "JobFailed"]
    assert getattr(history.events[-1].envelope.data, "reason", None) == "max_deliveries"
    assert history.events[-1].envelope.causation_id is not None
    assert await queue.fill() == (0, queue.max_messages)  # the given-up message is deleted
    stop.set()
    await clock.advance(0.5)
    await asyncio.wait_for(task, 10)
    assert queue.advisories().counts() == (0, 0)  # acked


async def test_the_ingest_backlog_goes_first() -> None:
    clock = FakeClock()
    queue = FakeJobQueue(clock=clock, max_deliver=1)
    executor = CommandExecutor(InMemoryEventStore())
    job_id = await given_up(queue, executor)
    queue.jobs.add(f"baker.jobs.status.{job_id}", b"{}", {})  # a report not yet ingested
    advisories = MaxDeliveries(executor, queue.advisories(), clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(advisories.run(stop))
    await until(lambda: clock.waiting > 0)
    await clock.advance(1.0)
    assert advisories.recorded == 0  # waiting for the ingest
    queue.jobs.messages.pop(max(queue.jobs.messages))  # ingested
    await clock.advance(0.05)
    await until(lambda: advisories.recorded == 1)
    stop.set()
    await clock.advance(0.5)
    await asyncio.wait_for(task, 10)


async def test_a_fenced_brain_hands_the_advisory_back() -> None:
    class NotLeading:
        def check(self, aggregate: str) -> int | None:
            raise Fenced("the leader is brain-b")

    queue = FakeJobQueue(clock=FakeClock(), max_deliver=1)
    store = InMemoryEventStore()
    await given_up(queue, CommandExecutor(store))
    advisories = MaxDeliveries(CommandExecutor(store, fence=NotLeading()), queue.advisories())
    [advisory] = await queue.advisories().fetch(1, wait=0)
    await advisories.handle(advisory)
    assert advisories.recorded == 0
    assert queue.advisories().pending[advisory.seq].ready_at is not None  # nak'd: again later
    assert (await queue.fill())[0] == 1  # the job's message stays for the leader


async def test_a_high_priority_job_given_up_on_its_lane_is_failed_too() -> None:
    clock = FakeClock()
    queue = FakeJobQueue(clock=clock, max_deliver=1)
    executor = CommandExecutor(InMemoryEventStore())
    spec = parse_job_spec({"type": "command", "payload": {"command": "ls"}, "priority": "high"})
    job_id = (await Dispatcher(executor, queue).dispatch(spec)).job_id
    high = queue.lane_sources()["high"]
    [delivery] = await high.fetch(1, wait=0)
    delivery.nak()
    assert await high.fetch(1, wait=0) == []  # given up: an advisory names `workers-high`
    advisories = MaxDeliveries(executor, queue.advisories(), clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(advisories.run(stop))
    await until(lambda: advisories.recorded == 1)
    history = await executor.store.load("job", job_id)
    assert getattr(history.events[-1].envelope.data, "reason", None) == "max_deliveries"
    stop.set()
    await clock.advance(0.5)
    await asyncio.wait_for(task, 10)
