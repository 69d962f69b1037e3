"""Ingest under duplicated, reordered, redelivered and malformed status messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.eventstore import StoreUnavailable
from adapters.nats.deliveries import JetStreamDeliveries, JsDelivery
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import INGEST_CONSUMER, JOBS_STREAM
from domain.commands import DispatchJob
from domain.specs import parse_job_spec
from services.brain.ingest import Ingest
from tests.integration.pipeline import Pipeline, running_pipeline, types

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo x"}})


@pytest.fixture
async def pipe(nats_server: NatsServerProcess) -> AsyncIterator[Pipeline]:
    async with running_pipeline(nats_server, start_brain=False) as p:
        yield p


async def publish(pipe: Pipeline, job_id: str, kind: str, body: dict[str, Any] | bytes) -> None:
    data = body if isinstance(body, bytes) else json.dumps({"id": job_id, **body}).encode()
    await pipe.raw.jetstream().publish(f"baker.jobs.{kind}.{job_id}", data)


async def pull_and_handle(pipe: Pipeline, count: int) -> list[Any]:
    source = JetStreamDeliveries(pipe.nc, JOBS_STREAM, INGEST_CONSUMER)
    msgs = await source.fetch(count, wait=5)
    for msg in msgs:
        await pipe.brain.ingest.handle(msg)
    await source.close()
    await pipe.nc.flush()  # the acks have reached the server before a test looks
    return msgs


async def test_duplicates_and_late_messages_are_absorbed(pipe: Pipeline) -> None:
    job = await pipe.brain.dispatcher.dispatch(SPEC)
    j = job.job_id
    for kind, body in [
        ("status", {"status": "received", "attempt": 1, "workerId": "w1"}),
        ("status", {"status": "received", "attempt": 1, "workerId": "w1"}),  # duplicate
        ("status", {"status": "running", "attempt": 1, "progress": "half"}),
        ("status", {"status": "running", "attempt": 1, "progress": "half"}),  # duplicate
        ("status", {"status": "received", "attempt": 1}),  # late, out of order
        ("result", {"status": "completed", "result": {"answer": 42}}),
        ("status", {"status": "completed"}),  # the status says it too
        ("status", {"status": "running", "attempt": 1, "progress": "ghost"}),  # after the end
    ]:
        await publish(pipe, j, kind, body)
    await pull_and_handle(pipe, 8)
    history = await pipe.store.load("job", j)
    assert types(history) == [
        "JobDispatched", "JobReceived", "JobStarted", "TransitionRejected", "JobCompleted",
        "TransitionRejected",
    ]  # fmt: skip
    assert history.events[4].envelope.data.result == {"answer": 42}
    late = history.events[3].envelope.data
    assert (late.from_state, late.attempted) == ("running", "received")
    assert pipe.brain.ingest.stats.rejected == 2


async def test_a_redelivered_message_appends_nothing_new(pipe: Pipeline) -> None:
    job = await pipe.brain.dispatcher.dispatch(SPEC)
    await publish(pipe, job.job_id, "status", {"status": "running", "progress": "p1"})
    source = JetStreamDeliveries(pipe.nc, JOBS_STREAM, INGEST_CONSUMER)
    [fetched] = await source.fetch(1, wait=5)
    acked: list[bool] = []

    class LostAck(JsDelivery):
        __slots__ = ()

        def ack(self) -> None:
            acked.append(True)  # the ack never reaches the server: JetStream would redeliver

    first = LostAck(fetched._msg)
    await pipe.brain.ingest.handle(first)
    assert acked == [True]
    await publish(pipe, job.job_id, "status", {"status": "running", "progress": "p2"})
    [second] = await source.fetch(1, wait=5)
    await pipe.brain.ingest.handle(second)
    await pipe.brain.ingest.handle(first)  # the redelivery of p1, after p2
    history = await pipe.store.load("job", job.job_id)
    assert types(history) == ["JobDispatched", "JobStarted", "JobProgressed"]
    assert [getattr(e.envelope.data, "progress", None) for e in history.events] == [
        None,
        "p1",
        "p2",
    ]
    await source.close()


async def test_malformed_messages_are_terminated_counted_and_do_not_block(pipe: Pipeline) -> None:
    job = await pipe.brain.dispatcher.dispatch(SPEC)
    await publish(pipe, job.job_id, "status", b"{not json")
    await publish(pipe, job.job_id, "status", {"status": "exploded"})
    await publish(
        pipe, "job-other", "status", json.dumps({"id": job.job_id, "status": "running"}).encode()
    )
    await publish(pipe, job.job_id, "status", {"status": "running"})
    await pull_and_handle(pipe, 4)
    assert pipe.brain.ingest.stats.malformed == 3
    assert (await pipe.store.load("job", job.job_id)).state.status == "running"
    info = await pipe.raw.jsm().consumer_info("BAKER_JOBS", "brain-ingest")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # nothing left to redeliver


async def test_a_malformed_dispatch_is_terminated_and_reported_failed(pipe: Pipeline) -> None:
    # The job is recorded, but the message a buggy dispatcher queued for it is broken.
    await pipe.executor.execute("job", "job-broken", DispatchJob(spec=SPEC))
    bad = json.dumps({"id": "job-broken", "type": "shell", "payload": {}}).encode()
    await pipe.raw.jetstream().publish("baker.jobs.dispatch", bad, headers={"Nats-Msg-Id": "x"})
    await pipe.raw.jetstream().publish("baker.jobs.dispatch", b"\xff no id at all")
    worker = await pipe.start_worker()
    pipe.tasks.append(asyncio.create_task(pipe.brain.run(pipe.stop)))
    history = await pipe.wait_job("job-broken", {"failed"})
    assert "malformed dispatch message: type:" in history.events[-1].envelope.data.error
    assert worker.stats.malformed == 2
    jobs = await pipe.raw.jsm().stream_info("BAKER_JOBS")
    assert jobs.state.messages == 0  # both terminated, nothing redelivered


class FlakyStore:
    """The real executor, its store unavailable once for the first `running` status."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.failed = False

    async def execute(self, aggregate: str, aggregate_id: str, cmd: Any, **kw: Any) -> Any:
        if getattr(cmd, "status", None) == "running" and not self.failed:
            self.failed = True
            raise StoreUnavailable("event store down for a moment")
        return await self._store.execute(aggregate, aggregate_id, cmd, **kw)

    async def execute_each(self, items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for aggregate, aggregate_id, cmd, trace_id, cause in items:
            try:
                out.append(
                    await self.execute(
                        aggregate, aggregate_id, cmd, trace_id=trace_id, causation_id=cause
                    )
                )
            except Exception as exc:  # as the real one returns it
                out.append(exc)
        return out


async def one_job_through(pipe: Pipeline, executor: Any) -> tuple[Ingest, Any]:
    """A job's received, running and result messages through an ingest on `executor`, until
    the job is completed: (the ingest, the job's history)."""
    job = await pipe.brain.dispatcher.dispatch(SPEC)
    for kind, body in [
        ("status", {"status": "received", "attempt": 1}),
        ("status", {"status": "running", "attempt": 1}),
        ("result", {"status": "completed", "result": {"ok": True}}),
    ]:
        await publish(pipe, job.job_id, kind, body)
    ingest = Ingest(executor, JetStreamDeliveries(pipe.nc, JOBS_STREAM, INGEST_CONSUMER))
    stop = asyncio.Event()
    running = asyncio.create_task(ingest.run(stop))
    history = await pipe.wait_job(job.job_id, {"completed"})
    stop.set()
    await running
    return ingest, history


async def test_a_store_outage_keeps_a_job_s_messages_in_order(pipe: Pipeline) -> None:
    flaky = FlakyStore(pipe.executor)
    ingest, history = await one_job_through(pipe, flaky)
    assert flaky.failed and ingest.stats.store_waits == 1
    assert types(history) == ["JobDispatched", "JobReceived", "JobStarted", "JobCompleted"]


class BrokenRound:
    """An executor whose first pipelined round fails with a bug of ours."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.broke = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def execute_each(self, items: list[Any]) -> list[Any]:
        if not self.broke:
            self.broke = True
            raise RuntimeError("a bug in the pipelined path")
        return await self._store.execute_each(items)  # type: ignore[no-any-return]


async def test_a_failing_round_is_handled_message_by_message(pipe: Pipeline) -> None:
    broken = BrokenRound(pipe.executor)
    ingest, history = await one_job_through(pipe, broken)
    assert broken.broke and ingest.stats.processed == 3 and ingest.stats.errors == 0
    assert types(history) == ["JobDispatched", "JobReceived", "JobStarted", "JobCompleted"]
