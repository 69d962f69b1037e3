"""The Brain's ingest over the in-memory job queue, the in-memory event store and a manual
clock: reports become events in order, duplicates and redeliveries append nothing, malformed
reports are terminated, a store outage is waited out in place, fencing hands messages back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.eventstore import InMemoryEventStore, StoreUnavailable
from domain.commands import DispatchJob
from domain.queue import Report
from domain.specs import parse_job_spec
from services.brain.ingest import Ingest
from services.brain.leadership import Fenced
from services.executor import CommandExecutor, Outcome
from tests.fakes.clock import FakeClock, settle
from tests.fakes.jobqueue import FakeDelivery, FakeJobQueue
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo x"}})


@dataclass
class Rig:
    queue: FakeJobQueue
    clock: FakeClock
    store: InMemoryEventStore
    executor: Any  # a CommandExecutor, or a test's stand-in for one
    ingest: Ingest
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)
    sent: int = 0

    async def report(self, job_id: str, kind: str, body: dict[str, Any] | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps({"id": job_id, **body}).encode()
        self.sent += 1
        status = "" if isinstance(body, bytes) else str(body.get("status"))
        await self.queue.report_all([Report(kind, job_id, status, data, {}, f"m-{self.sent}")])  # type: ignore[arg-type]

    async def handle_all(self) -> list[FakeDelivery]:
        got = await self.queue.ingest.fetch(100, wait=0)
        for delivery in got:
            await self.ingest.handle(delivery)
        return got

    async def types(self, job_id: str) -> list[str]:
        return [e.envelope.type for e in (await self.store.load("job", job_id)).events]

    def reports_left(self) -> int:
        return sum(m.subject != "baker.jobs.dispatch" for m in self.queue.jobs.messages.values())


def make_rig(executor: Any = None) -> Rig:
    clock = FakeClock()
    queue = FakeJobQueue(clock=clock)
    store = InMemoryEventStore()
    executor = executor or CommandExecutor(store)
    outcomes: list[tuple[str, Outcome]] = []
    ingest = Ingest(
        executor, queue.report_source(), clock=clock, store_wait=60.0,
        on_outcome=lambda job_id, outcome: outcomes.append((job_id, outcome)),
    )  # fmt: skip
    return Rig(queue, clock, store, executor, ingest, outcomes)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = make_rig()
    await r.executor.execute("job", "job-1", DispatchJob(spec=SPEC), new=True)
    yield r


async def test_duplicates_and_late_messages_are_absorbed(rig: Rig) -> None:
    sequence: list[tuple[str, dict[str, Any]]] = [
        ("status", {"status": "received", "attempt": 1, "workerId": "w1"}),
        ("status", {"status": "received", "attempt": 1, "workerId": "w1"}),  # duplicate
        ("status", {"status": "running", "attempt": 1, "progress": "half"}),
        ("status", {"status": "running", "attempt": 1, "progress": "half"}),  # duplicate
        ("status", {"status": "received", "attempt": 1}),  # late, out of order
        ("result", {"status": "completed", "result": {"answer": 42}}),
        ("status", {"status": "completed"}),  # the status says it too
        ("status", {"status": "running", "attempt": 1, "progress": "ghost"}),  # after the end
    ]
    for kind, body in sequence:
        await rig.report("job-1", kind, body)
    await rig.handle_all()
    assert await rig.types("job-1") == [
        "JobDispatched", "JobReceived", "JobStarted", "TransitionRejected", "JobCompleted",
        "TransitionRejected",
    ]  # fmt: skip
    assert rig.ingest.stats.rejected == 2 and rig.ingest.stats.processed == 8
    assert rig.reports_left() == 0  # every one acked
    assert [job for job, _ in rig.outcomes] == ["job-1"] * 8


async def test_the_run_loop_takes_a_batch_in_rounds_one_message_per_job(rig: Rig) -> None:
    await rig.executor.execute("job", "job-2", DispatchJob(spec=SPEC), new=True)
    for job_id in ("job-1", "job-2"):
        await rig.report(job_id, "status", {"status": "received", "attempt": 1})
        await rig.report(job_id, "status", {"status": "running", "attempt": 1})
        await rig.report(job_id, "result", {"status": "completed", "result": {"j": job_id}})
    stop = asyncio.Event()
    running = asyncio.create_task(rig.ingest.run(stop))
    await until(lambda: rig.ingest.stats.processed == 6)
    stop.set()
    await rig.clock.advance(0.5)  # the fetch in progress ends
    await asyncio.wait_for(running, 10)
    for job_id in ("job-1", "job-2"):
        assert await rig.types(job_id) == [
            "JobDispatched", "JobReceived", "JobStarted", "JobCompleted",
        ]  # fmt: skip
    assert rig.queue.ingest.closed == 1
    assert rig.executor.stats.cache_hits >= 6  # the pipelined path, no reload per message


async def test_a_redelivered_message_appends_nothing_new(rig: Rig) -> None:
    await rig.report("job-1", "status", {"status": "running", "progress": "p1"})
    [first] = await rig.queue.ingest.fetch(1, wait=0)

    def lost_ack() -> None:  # the ack never reaches the server: it is redelivered
        return None

    first.ack = lost_ack  # type: ignore[method-assign]
    await rig.ingest.handle(first)
    await rig.report("job-1", "status", {"status": "running", "progress": "p2"})
    await rig.handle_all()
    await rig.clock.advance(30.0)  # the ingest consumer's ack-wait: p1 comes again
    [again] = await rig.handle_all()
    assert (again.seq, again.delivered) == (first.seq, 2)
    history = (await rig.store.load("job", "job-1")).events
    assert [getattr(e.envelope.data, "progress", None) for e in history] == [None, "p1", "p2"]
    assert rig.reports_left() == 0


async def test_malformed_reports_are_terminated_counted_and_do_not_block(rig: Rig) -> None:
    await rig.report("job-1", "status", b"{not json")
    await rig.report("job-1", "status", {"status": "exploded"})
    await rig.report(
        "job-other", "status", json.dumps({"id": "job-1", "status": "running"}).encode()
    )
    await rig.report("job-1", "status", {"status": "running"})
    await rig.handle_all()
    assert rig.ingest.stats.malformed == 3
    assert (await rig.store.load("job", "job-1")).state.status == "running"
    assert rig.reports_left() == 0  # terminated or acked: nothing comes again


class Outage:
    """The real executor, whose store is down for the first `running` status until the test
    says it is back."""

    def __init__(self, executor: CommandExecutor) -> None:
        self._executor = executor
        self.down = True
        self.refused = 0
        self.stats = executor.stats

    async def execute(self, aggregate: str, aggregate_id: str, cmd: Any, **kw: Any) -> Any:
        if getattr(cmd, "status", None) == "running" and self.down:
            self.refused += 1
            raise StoreUnavailable("event store down")
        return await self._executor.execute(aggregate, aggregate_id, cmd, **kw)

    async def execute_each(self, items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for aggregate, aggregate_id, cmd, trace_id, cause in items:
            try:
                out.append(await self.execute(
                    aggregate, aggregate_id, cmd, trace_id=trace_id, causation_id=cause
                ))  # fmt: skip
            except Exception as exc:  # as the real one returns it
                out.append(exc)
        return out


async def test_a_store_outage_is_waited_out_in_place_keeping_the_order() -> None:
    store = InMemoryEventStore()
    outage = Outage(CommandExecutor(store))
    rig = make_rig(outage)
    rig.store = store
    await outage.execute("job", "job-1", DispatchJob(spec=SPEC), new=True)
    await rig.report("job-1", "status", {"status": "received", "attempt": 1})
    await rig.report("job-1", "status", {"status": "running", "attempt": 1})
    await rig.report("job-1", "result", {"status": "completed", "result": {"ok": True}})
    stop = asyncio.Event()
    running = asyncio.create_task(rig.ingest.run(stop))
    await until(lambda: outage.refused == 1)
    await settle()
    assert await rig.types("job-1") == ["JobDispatched", "JobReceived"]  # not the result
    assert rig.ingest.stats.store_waits == 1
    for _ in range(3):  # still down: back-off of 1, 2, 4 s on the clock, in-progress acks
        await until(lambda: rig.clock.waiting > 0)
        await rig.clock.advance(rig.clock.next_deadline() - rig.clock.now())  # type: ignore[operator]
    assert outage.refused == 4 and rig.ingest.stats.store_waits == 4
    assert rig.queue.ingest.counts() == (0, 2)  # held, never redelivered meanwhile
    outage.down = False
    await rig.clock.advance(8.0)
    await until(lambda: rig.ingest.stats.processed == 3)
    assert await rig.types("job-1") == [
        "JobDispatched", "JobReceived", "JobStarted", "JobCompleted",
    ]  # fmt: skip
    stop.set()
    await rig.clock.advance(0.5)
    await asyncio.wait_for(running, 10)


async def test_an_outage_longer_than_the_store_wait_hands_the_message_back() -> None:
    store = InMemoryEventStore()
    outage = Outage(CommandExecutor(store))
    rig = make_rig(outage)
    await outage.execute("job", "job-1", DispatchJob(spec=SPEC), new=True)
    await rig.report("job-1", "status", {"status": "running", "attempt": 1})
    [delivery] = await rig.queue.ingest.fetch(1, wait=0)
    handling = asyncio.create_task(rig.ingest.handle(delivery))
    while not handling.done():  # 60 s of store wait, on the clock
        await until(lambda: rig.clock.waiting > 0 or handling.done())
        if not handling.done():
            await rig.clock.advance(rig.clock.next_deadline() - rig.clock.now())  # type: ignore[operator]
    await handling
    assert rig.clock.now() - 1000.0 >= 60.0
    assert rig.ingest.stats.processed == 0
    p = rig.queue.ingest.pending[delivery.seq]
    assert p.ready_at == rig.clock.now() + 2  # nak'd with a delay, for a later try


async def test_a_fenced_brain_hands_messages_back_and_records_nothing() -> None:
    class NotLeading:
        def check(self, aggregate: str) -> int | None:
            raise Fenced("brain-a may not append job events: the leader is brain-b")

    store = InMemoryEventStore()
    await CommandExecutor(store).execute("job", "job-1", DispatchJob(spec=SPEC), new=True)
    rig = make_rig(CommandExecutor(store, fence=NotLeading()))
    rig.store = store
    await rig.report("job-1", "status", {"status": "running", "attempt": 1})
    [delivery] = await rig.handle_all()
    assert rig.ingest.stats.fenced == 1 and rig.ingest.stats.processed == 0
    assert await rig.types("job-1") == ["JobDispatched"]
    assert rig.queue.ingest.pending[delivery.seq].ready_at == rig.clock.now() + 0.5


async def test_a_message_our_code_keeps_failing_on_is_terminated_after_five_tries() -> None:
    class Broken:
        stats = None

        async def execute(self, *args: Any, **kw: Any) -> Any:
            raise RuntimeError("a bug of ours")

        async def execute_each(self, items: list[Any]) -> list[Any]:
            return [RuntimeError("a bug of ours") for _ in items]

    rig = make_rig(Broken())
    await rig.report("job-1", "status", {"status": "running", "attempt": 1})
    for attempt in range(1, 6):
        [delivery] = await rig.handle_all()
        assert delivery.delivered == attempt
        await rig.clock.advance(1.0)  # the nak's delay
    assert rig.ingest.stats.errors == 5
    assert rig.reports_left() == 0 and await rig.queue.ingest.fetch(1, wait=0) == []
