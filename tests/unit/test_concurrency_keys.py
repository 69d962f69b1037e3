"""Concurrency keys (DESIGN §11) without a server: the spec's fields, the lifecycle of a held
job, and the Brain's gate over the fake queue: never more than the limit of a key published
and not ended, held jobs released in order as slots free, a cancelled held job never queued,
a worker's death keeping its slot, and a new Brain rebuilding the counts from the log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.commands import DispatchJob, HoldJob, QueueJob, RecordStatus, RequestCancel
from domain.errors import FieldError
from domain.events import JobHeld, JobQueued
from domain.lifecycle import decide, evolve
from domain.lifecycle.job import JobState
from domain.specs import parse_job_spec
from services.brain.dispatcher import Dispatcher
from services.brain.watchdog import Watchdog
from services.executor import CommandExecutor
from tests.fakes.clock import FakeClock
from tests.fakes.jobqueue import FakeJobQueue
from tests.polling import until


def spec(key: str | None = "tenant-a", limit: int | None = 2, **extra: Any) -> Any:
    doc: dict[str, Any] = {"type": "command", "payload": {"command": "echo hi"}, **extra}
    if key is not None:
        doc["concurrencyKey"] = key
    if limit is not None:
        doc["concurrencyLimit"] = limit
    return parse_job_spec(doc)


# --- spec and lifecycle --------------------------------------------------------------------


def test_a_limit_needs_a_key_and_bad_values_name_their_field() -> None:
    for doc, field in (
        ({"concurrencyLimit": 2}, "concurrencyKey"),
        ({"concurrencyKey": "has space"}, "concurrencyKey"),
        ({"concurrencyKey": "k" * 129}, "concurrencyKey"),
        ({"concurrencyKey": "k", "concurrencyLimit": 0}, "concurrencyLimit"),
        ({"concurrencyKey": "k", "concurrencyLimit": "two"}, "concurrencyLimit"),
    ):
        with pytest.raises(FieldError) as exc:
            parse_job_spec({"type": "command", "payload": {"command": "ls"}, **doc})
        assert exc.value.field == field, doc
    only_key = spec(limit=None)
    assert (only_key.concurrency_key, only_key.concurrency_limit) == ("tenant-a", None)


def fold(state: JobState, *cmds: Any) -> tuple[JobState, list[Any]]:
    events: list[Any] = []
    for cmd in cmds:
        out = decide("job", state, cmd)
        assert isinstance(out, list), out
        for event in out:
            state = evolve("job", state, event)
        events.extend(out)
    return state, events


def test_a_held_job_is_queued_once_and_a_cancel_ends_it_at_once() -> None:
    dispatched, _ = fold(JobState(), DispatchJob(spec=spec()))
    assert (dispatched.concurrency_key, dispatched.concurrency_limit) == ("tenant-a", 2)
    held, events = fold(dispatched, HoldJob("tenant-a", 2), HoldJob("tenant-a", 2))
    assert [type(e).__name__ for e in events] == ["JobHeld"]  # the second: a duplicate
    assert held.status == "dispatched" and held.held == 1
    queued, events = fold(held, QueueJob(), QueueJob())
    assert events == [JobQueued(attempt=1, cause="concurrency")] and queued.held == 0
    cancelled, events = fold(held, RequestCancel(reason="no longer needed"))
    assert [type(e).__name__ for e in events] == ["JobCancelRequested", "JobCancelled"]
    assert cancelled.status == "cancelled"
    # a job already running is not held
    running, _ = fold(dispatched, RecordStatus(status="running", attempt=1))
    assert not isinstance(decide("job", running, HoldJob("tenant-a", 2)), list)


# --- the gate ----------------------------------------------------------------------------


@dataclass
class Rig:
    dispatcher: Dispatcher
    watchdog: Watchdog
    queue: FakeJobQueue
    store: InMemoryEventStore
    executor: CommandExecutor
    stop: asyncio.Event
    task: asyncio.Task[None]

    def published(self) -> list[str]:
        """Job ids of the dispatch messages ever queued, in order."""
        return [
            json.loads(m.data)["id"]
            for m in self.queue.published
            if m.subject.startswith("baker.jobs.dispatch")
        ]

    async def report(self, job_id: str, status: str, attempt: int = 1) -> None:
        """What the ingest does with a worker's report."""
        cmd = RecordStatus(status=status, attempt=attempt, worker_id="w-1")  # type: ignore[arg-type]
        outcome = await self.executor.execute("job", job_id, cmd)
        self.watchdog.observe(job_id, outcome.state)

    async def types(self, job_id: str) -> list[str]:
        return [e.envelope.type for e in (await self.store.load("job", job_id)).events]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


async def start(store: InMemoryEventStore, queue: FakeJobQueue, clock: FakeClock) -> Rig:
    executor = CommandExecutor(store)
    watchdog = Watchdog(executor, queue, check_every=5.0, clock=clock)
    dispatcher = Dispatcher(
        executor, watchdog.gate, on_outcome=lambda job, out: watchdog.observe(job, out.state)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog.run(stop))
    await until(watchdog.gate._ready.is_set, "the gate is seeded")
    return Rig(dispatcher, watchdog, queue, store, executor, stop, task)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock()
    r = await start(InMemoryEventStore(), FakeJobQueue(clock=clock), clock)
    yield r
    await r.close()


async def test_no_more_than_the_limit_is_published_and_held_jobs_follow_in_order(
    rig: Rig,
) -> None:
    jobs = [(await rig.dispatcher.dispatch(spec())).job_id for _ in range(5)]
    other = (await rig.dispatcher.dispatch(spec(key=None, limit=None))).job_id
    elsewhere = (await rig.dispatcher.dispatch(spec(key="tenant-b"))).job_id
    assert rig.published() == [jobs[0], jobs[1], other, elsewhere]
    for job_id in jobs[2:]:
        assert await rig.types(job_id) == ["JobDispatched", "JobHeld"]
    assert rig.watchdog.gate.state()["tenant-a"].held == 3
    await rig.report(jobs[0], "running")
    await rig.report(jobs[0], "completed")
    await until(lambda: len(rig.published()) == 5, "one held job released")
    assert rig.published()[-1] == jobs[2]
    assert (await rig.types(jobs[2]))[-1] == "JobQueued"
    await rig.report(jobs[1], "failed")
    await rig.report(jobs[2], "running")
    await rig.report(jobs[2], "completed")
    await until(lambda: len(rig.published()) == 7, "the next two released")
    assert rig.published()[-2:] == [jobs[3], jobs[4]]
    assert rig.watchdog.gate.state()["tenant-a"].admitted == 2


async def test_a_worker_dying_keeps_the_slot_until_its_job_ends(rig: Rig) -> None:
    first, second = [(await rig.dispatcher.dispatch(spec(limit=1))).job_id for _ in range(2)]
    await rig.report(first, "received")
    await rig.report(first, "received", attempt=2)  # redelivered after its worker died
    await rig.report(first, "running", attempt=2)
    assert rig.published() == [first]
    await rig.report(first, "completed", attempt=2)
    await until(lambda: rig.published() == [first, second])


async def test_a_cancelled_held_job_never_runs_and_gives_its_turn_away(rig: Rig) -> None:
    a, b, c = [(await rig.dispatcher.dispatch(spec(limit=1))).job_id for _ in range(3)]
    await rig.dispatcher.cancel(b)
    assert (await rig.types(b))[-1] == "JobCancelled"
    await until(lambda: rig.watchdog.gate.state()["tenant-a"].held == 1)
    await rig.report(a, "running")
    await rig.report(a, "completed")
    await until(lambda: rig.published() == [a, c])
    assert "JobQueued" not in await rig.types(b)


async def test_a_retrying_job_frees_its_slot_and_its_retry_waits_for_one(rig: Rig) -> None:
    retry = {"maxAttempts": 2, "initialSeconds": 0}
    a = (await rig.dispatcher.dispatch(spec(limit=1, retry=retry))).job_id
    b = (await rig.dispatcher.dispatch(spec(limit=1))).job_id
    await rig.report(a, "failed")  # retried at once: a's retry is queued behind b
    await until(lambda: rig.published()[:2] == [a, b], "b takes the slot a freed")
    assert "JobRetryScheduled" in await rig.types(a)
    await until(lambda: rig.watchdog.gate.holds(a), "a's retry held")
    await rig.report(b, "running")
    await rig.report(b, "completed")
    await until(lambda: rig.published() == [a, b, a], "a's retry queued")


async def test_a_new_brain_rebuilds_the_counts_from_the_log() -> None:
    clock = FakeClock()
    store, queue = InMemoryEventStore(), FakeJobQueue(clock=clock)
    old = await start(store, queue, clock)
    a, b, c = [(await old.dispatcher.dispatch(spec(limit=2))).job_id for _ in range(3)]
    await old.report(a, "running")
    await old.close()
    # a job recorded by the old Brain, which stopped before it could hold or queue it
    unqueued = "job-unqueued"
    await CommandExecutor(store).execute("job", unqueued, DispatchJob(spec=spec(limit=2)))
    new = await start(store, queue, clock)
    try:
        state = new.watchdog.gate.state()["tenant-a"]
        assert (state.admitted, state.held) == (2, 2)  # a running, b queued; c and unqueued held
        assert "JobHeld" in await new.types(unqueued)
        assert new.published() == [a, b]
        await new.report(b, "running")
        await new.report(b, "completed")
        await until(lambda: new.published() == [a, b, c], "c, held first, goes first")
        await new.report(a, "completed")
        await until(lambda: new.published() == [a, b, c, unqueued])
    finally:
        await new.close()


async def test_a_held_job_is_not_called_undeliverable(rig: Rig) -> None:
    a, b = [(await rig.dispatcher.dispatch(spec(limit=1))).job_id for _ in range(2)]
    await rig.report(a, "running")
    rig.watchdog.undeliverable_after = 0.0
    await rig.watchdog.check()
    assert (await rig.types(b))[-1] == "JobHeld"
    assert isinstance((await rig.store.load("job", b)).events[-1].envelope.data, JobHeld)
