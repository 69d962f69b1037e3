"""Priority lanes (DESIGN §11) without a server: the lane of a priority, the dispatcher and the
requeue paths keeping it, the worker's fetch order over the fake queue's lane consumers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.errors import FieldError
from domain.events import JobDispatched
from domain.priority import PRIORITIES, lane_of, lane_subject, subject_lane
from domain.queue import job_of_message, requeue_message
from domain.specs import parse_job_spec
from domain.wire import DispatchMessage, decode_dispatch
from services.brain.dispatcher import Dispatcher
from services.executor import CommandExecutor
from services.ports.jobs import Delivery, DeliverySource
from services.worker.executors import ExecutorSettings
from services.worker.lanes import LaneSource, lane_source
from services.worker.worker import Worker, WorkerSettings
from tests.fakes.clock import FakeClock
from tests.fakes.jobqueue import FakeJobQueue
from tests.polling import until
from tests.unit.test_worker import Runner


def message(job_id: str, priority: str | None) -> DispatchMessage:
    return DispatchMessage(
        id=job_id, type="command", payload={"command": "echo hi"},
        reply_to=f"baker.jobs.status.{job_id}", created_at=datetime.now(UTC),
        priority=priority,  # type: ignore[arg-type]
    )  # fmt: skip


def test_each_priority_has_its_lane_and_normal_keeps_the_plain_subject() -> None:
    assert [lane_subject(p) for p in PRIORITIES] == [
        "baker.jobs.dispatch.high", "baker.jobs.dispatch", "baker.jobs.dispatch.low",
    ]  # fmt: skip
    assert lane_of(None) == lane_of("urgent") == "normal"
    assert [subject_lane(lane_subject(p)) for p in PRIORITIES] == list(PRIORITIES)
    assert subject_lane("baker.jobs.dispatch.other") is None
    assert job_of_message("baker.jobs.dispatch.low", message("job-l", "low").encode()) == "job-l"


def test_a_bad_priority_is_refused_naming_the_field() -> None:
    with pytest.raises(FieldError) as exc:
        parse_job_spec({"type": "command", "payload": {"command": "ls"}, "priority": "urgent"})
    assert exc.value.field == "priority"
    spec = parse_job_spec({"type": "command", "payload": {"command": "ls"}, "priority": "low"})
    assert spec.priority == "low"


def test_a_seed_dispatch_without_priority_is_normal() -> None:
    raw = b'{"id": "job-s", "type": "command", "payload": {"command": "ls"}}'
    assert lane_subject(decode_dispatch(raw).priority) == "baker.jobs.dispatch"


def test_a_job_queued_again_keeps_its_lane() -> None:
    dispatched = JobDispatched(job_type="command", payload={"command": "ls"}, priority="high")
    assert requeue_message("job-h", dispatched, attempt=2).priority == "high"
    plain = JobDispatched(job_type="command", payload={"command": "ls"})
    assert requeue_message("job-n", plain).priority is None


async def test_the_dispatcher_records_the_priority_and_queues_on_its_lane() -> None:
    store, fake = InMemoryEventStore(), FakeJobQueue()
    dispatcher = Dispatcher(CommandExecutor(store), fake)
    spec = parse_job_spec({"type": "command", "payload": {"command": "ls"}, "priority": "high"})
    done = await dispatcher.dispatch(spec, job_id="job-h")
    history = await store.load("job", done.job_id)
    first = history.events[0].envelope.data
    assert isinstance(first, JobDispatched) and first.priority == "high"
    assert [m.subject for m in fake.published] == ["baker.jobs.dispatch.high"]
    assert (await fake.lanes())["high"].queued == 1


async def test_free_slots_take_high_then_normal_then_low() -> None:
    fake = FakeJobQueue()
    for job_id, priority in (("l1", "low"), ("n1", None), ("h1", "high"), ("n2", "normal")):
        await fake.dispatch(message(job_id, priority), {})
    source = lane_source(list(fake.lane_sources().values()), hints=fake)
    got = [decode_dispatch(d.data).id for d in await source.fetch(1, wait=0)]
    got += [decode_dispatch(d.data).id for d in await source.fetch(3, wait=0)]
    assert got == ["h1", "n1", "n2", "l1"]
    assert await source.fetch(4, wait=0) == []


async def test_an_idle_source_is_woken_by_a_job_on_any_lane_and_never_over_asks() -> None:
    clock = FakeClock()
    fake = FakeJobQueue(clock=clock)
    source = lane_source(list(fake.lane_sources().values()))
    waiting = asyncio.ensure_future(source.fetch(4, wait=30.0))
    await until(lambda: len(source._open) == 3)  # one waiting pull per lane
    await fake.dispatch(message("l1", "low"), {})
    [first] = await asyncio.wait_for(waiting, 5)
    assert decode_dispatch(first.data).id == "l1"
    # the pulls still open on the other lanes count against the free slots: with 2 open and
    # 3 slots, one more job at most is asked for, and what arrives on them is handed over
    for job_id, priority in (("h1", "high"), ("h2", "high"), ("n1", None)):
        await fake.dispatch(message(job_id, priority), {})
    await until(lambda: all(pull.done() for pull in source._open.values()))
    got = [decode_dispatch(d.data).id for d in await source.fetch(3, wait=0)]
    assert got == ["h1", "n1", "h2"]  # the open pulls' (lane order), then high again
    await source.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def saturated_worker(
    fake: FakeJobQueue, clock: FakeClock, runner: Runner, stop: asyncio.Event
) -> tuple[Worker, asyncio.Task[None]]:
    settings = WorkerSettings(executors=ExecutorSettings(allowed_commands=()), concurrency=1,
                              ack_wait=30.0, grace=5.0)  # fmt: skip
    source = LaneSource(list(fake.lane_sources().values()), wait_first=1, hints=fake)
    worker = Worker(source, fake, fake, settings, run=runner, clock=clock, worker_id="w-1")
    return worker, asyncio.create_task(worker.run(stop))


@pytest.fixture
async def running() -> AsyncIterator[tuple[FakeJobQueue, FakeClock, Runner, asyncio.Event]]:
    clock = FakeClock()
    fake, runner, stop = FakeJobQueue(clock=clock), Runner(), asyncio.Event()
    _, task = await saturated_worker(fake, clock, runner, stop)
    yield fake, clock, runner, stop
    for job_id in list(runner.gates):
        runner.release(job_id)
    stop.set()
    await clock.advance(1.0)
    await asyncio.wait_for(task, 10)


async def test_a_saturated_worker_starts_high_before_normal_before_low(
    running: tuple[FakeJobQueue, FakeClock, Runner, asyncio.Event],
) -> None:
    fake, _clock, runner, _ = running
    await fake.dispatch(message("busy", None), {})
    await until(lambda: runner.started == ["busy"])
    for job_id, priority in (("l1", "low"), ("n1", None), ("l2", "low"), ("h1", "high"),
                             ("n2", "normal"), ("h2", "high")):  # fmt: skip
        await fake.dispatch(message(job_id, priority), {})
    order = ["busy", "h1", "h2", "n1", "n2", "l1", "l2"]
    for i, job_id in enumerate(order):
        await until(lambda i=i: len(runner.started) == i + 1)
        runner.release(job_id)
    await until(lambda: len(runner.started) == len(order))
    assert runner.started == order


async def test_a_paused_queue_gives_nothing_new_and_a_running_job_finishes(
    running: tuple[FakeJobQueue, FakeClock, Runner, asyncio.Event],
) -> None:
    fake, clock, runner, _ = running
    await fake.dispatch(message("j1", None), {})
    await until(lambda: runner.started == ["j1"])
    await fake.pause_lanes(True)
    await fake.pause_lanes(True)  # twice: the same
    await fake.dispatch(message("j2", "high"), {})
    runner.release("j1")
    await until(lambda: fake.workers.counts() == (0, 0))  # j1 acked
    for _ in range(5):
        await clock.advance(1.0)  # fetches come and go: nothing is handed out
    assert runner.started == ["j1"]
    assert {lane: s.paused for lane, s in (await fake.lanes()).items()} == dict.fromkeys(
        PRIORITIES, True
    )
    await fake.pause_lanes(False)
    # one free slot, three lanes: the worker waits on `normal` and looks at the others again
    # every `recheck` (0.25 s on its clock); the high lane, found empty while paused, once
    # `forget` (0.5 s) has passed

    async def started_again() -> bool:
        await clock.advance(0.3)
        return runner.started == ["j1", "j2"]

    await until(started_again)


class Counted:
    """A lane's source that counts the asks it is given."""

    def __init__(self, inner: DeliverySource) -> None:
        self.inner = inner
        self.asks = 0
        self.probes = 0  # asks for what is there now only (`wait` 0)

    async def fetch(self, n: int, wait: float) -> Sequence[Delivery]:
        self.asks += 1
        self.probes += wait <= 0
        return await self.inner.fetch(n, wait)

    async def close(self) -> None:
        await self.inner.close()


async def test_an_empty_lane_is_not_asked_again_until_a_job_is_queued_on_it() -> None:
    fake = FakeJobQueue()
    high, normal, low = (Counted(c) for c in fake.lane_sources().values())
    source = LaneSource([high, normal, low], wait_first=1, hints=fake, forget=3600.0)
    for k in range(5):
        await fake.dispatch(message(f"n{k}", None), {})
    taken = [decode_dispatch(d.data).id for _ in range(5) for d in await source.fetch(1, 0)]
    assert taken == ["n0", "n1", "n2", "n3", "n4"]
    assert (high.asks, normal.asks) == (1, 5)  # high: found empty once, then left alone
    await fake.dispatch(message("h1", "high"), {})  # the hint: ask high again
    await fake.dispatch(message("n5", None), {})
    assert [decode_dispatch(d.data).id for d in await source.fetch(1, 0)] == ["h1"]
    assert [decode_dispatch(d.data).id for d in await source.fetch(1, 0)] == ["n5"]
    assert high.asks == 3
    await source.close()


async def test_an_idle_source_with_hints_waits_on_the_busy_lane_only_and_a_hint_wakes_it() -> None:
    """Pulls left open on quiet lanes would each hold a slot until they expire: a burst on
    `normal` would then find the worker running below its concurrency."""
    fake = FakeJobQueue()
    source = lane_source(list(fake.lane_sources().values()), hints=fake)
    waiting = asyncio.ensure_future(source.fetch(4, wait=30.0))
    await until(lambda: len(source._open) == 1)
    assert list(source._open) == [PRIORITIES.index("normal")]
    for k in range(4):  # a burst on normal: the open pull takes one, the rest are asked for
        await fake.dispatch(message(f"n{k}", None), {})
    first = await asyncio.wait_for(waiting, 5)
    rest = await source.fetch(3, wait=0)
    assert [decode_dispatch(d.data).id for d in [*first, *rest]] == ["n0", "n1", "n2", "n3"]
    waiting = asyncio.ensure_future(source.fetch(4, wait=30.0))
    await until(lambda: len(source._open) == 1)
    await fake.dispatch(message("h1", "high"), {})  # the hint ends the wait at once
    assert await asyncio.wait_for(waiting, 5) == []
    assert [decode_dispatch(d.data).id for d in await source.fetch(3, wait=0)] == ["h1"]
    await source.close()


async def test_a_trickle_on_the_busy_lane_is_taken_by_waiting_pulls_without_probes() -> None:
    """A job that left `normal` empty as it went out: the next ask would come back empty, so
    the source waits on it at once. A delivery that left more behind, or a job hinted on a
    lane after it (asked in order: `normal` first), brings the probe back."""
    fake = FakeJobQueue()
    high, normal, low = (Counted(c) for c in fake.lane_sources().values())
    source = LaneSource([high, normal, low], wait_first=1, hints=fake, forget=3600.0)
    await fake.dispatch(message("n0", None), {})
    assert [decode_dispatch(d.data).id for d in await source.fetch(4, 30.0)] == ["n0"]
    assert (normal.probes, low.probes) == (1, 1)  # both found empty: no hint since
    for k in range(1, 4):  # one job at a time, each leaving the lane empty
        waiting = asyncio.ensure_future(source.fetch(4, 30.0))
        await until(lambda: len(source._open) == 1)
        await fake.dispatch(message(f"n{k}", None), {})
        assert [decode_dispatch(d.data).id for d in await waiting] == [f"n{k}"]
    assert normal.probes == 1 and normal.asks == 4  # three waits, no probe
    for k in range(4, 7):  # a burst: the waiting pull takes one and says more are there
        await fake.dispatch(message(f"n{k}", None), {})
    first = await source.fetch(4, 30.0)
    rest = await source.fetch(3, 30.0)
    assert [decode_dispatch(d.data).id for d in [*first, *rest]] == ["n4", "n5", "n6"]
    assert normal.probes == 2
    await fake.dispatch(message("n7", None), {})  # normal is drained, but low is hinted:
    await fake.dispatch(message("l1", "low"), {})  # normal is asked first, then low
    got = await source.fetch(4, 30.0)
    assert [decode_dispatch(d.data).id for d in got] == ["n7", "l1"]
    assert normal.probes == 3
    await source.close()
