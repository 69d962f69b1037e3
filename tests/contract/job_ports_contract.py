"""One contract for the job ports (`services.ports.jobs`): the in-memory fake and the NATS
adapters on a real nats-server both subclass it.

A subclass provides `ports` (a `Ports`: the Brain's job queue, which is also a worker's report
sink and cancel signals; the workers' work source; the ingest's report source; the
advisories), built with the workers' ack-wait `ACK_WAIT` and max deliver `MAX_DELIVER`, and
`fill_to_the_limit(ports)`. Time is real here (short ack-waits): redeliveries are waited for
with `fetch`'s own wait, never with a sleep.
"""

from __future__ import annotations

import abc
import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.queue import QueueFull, Report
from domain.wire import DispatchMessage, decode_status, encode_status
from services.ports.jobs import Advisories, Delivery, DeliverySource, JobQueue, ReportSink

ACK_WAIT = 1.0
MAX_DELIVER = 2
PATIENCE = 10.0  # the longest a fetch waits for something that must come


@dataclass
class Ports:
    queue: JobQueue
    sink: ReportSink
    work: DeliverySource
    reports: DeliverySource
    advisories: Advisories


def job(job_id: str) -> DispatchMessage:
    return DispatchMessage(
        id=job_id, type="command", payload={"command": "echo hi"},
        reply_to=f"baker.jobs.status.{job_id}", created_at=datetime.now(UTC),
    )  # fmt: skip


def status(job_id: str, state: str, n: int) -> Report:
    payload = encode_status(job_id, state, worker_id="w-1", attempt=1)  # type: ignore[arg-type]
    return Report("status", job_id, state, payload, {"traceparent": "00-" + "a" * 32 + "-"
                  + "b" * 16 + "-01"}, f"{job_id}:1:w-1:{n}")  # fmt: skip


async def one(source: DeliverySource, wait: float = PATIENCE) -> Delivery:
    got = await source.fetch(1, wait=wait)
    assert len(got) == 1, f"nothing delivered within {wait}s"
    return got[0]


class JobPortsContract(abc.ABC):
    @abc.abstractmethod
    async def fill_to_the_limit(self, ports: Ports) -> None:
        """Queue jobs until the next dispatch would be refused as full."""

    # --- the job queue and the work source ----------------------------------------------------

    async def test_a_dispatched_job_is_delivered_once_with_its_headers(self, ports: Ports) -> None:
        seq = await ports.queue.dispatch(job("job-1"), {"traceparent": "00-x-y-01"})
        delivery = await one(ports.work)
        assert (delivery.subject, delivery.seq, delivery.delivered) == (
            "baker.jobs.dispatch", seq, 1,
        )  # fmt: skip
        assert json.loads(delivery.data)["id"] == "job-1"
        assert delivery.headers is not None and delivery.headers["traceparent"] == "00-x-y-01"
        assert delivery.headers["Nats-Msg-Id"] == "job-1"
        assert await ports.work.fetch(1, wait=0.2) == []  # out: not delivered twice
        delivery.ack()

    async def test_the_same_job_dispatched_twice_is_queued_once(self, ports: Ports) -> None:
        first = await ports.queue.dispatch(job("job-2"), {})
        again = await ports.queue.dispatch(job("job-2"), {})
        assert first == again
        assert (await ports.queue.fill())[0] == 1

    async def test_dispatch_all_queues_each_once_in_order(self, ports: Ports) -> None:
        batch = [(job(f"job-b{i}"), {"traceparent": f"00-t{i}-s-01"}) for i in range(3)]
        await ports.queue.dispatch_all(batch)
        await ports.queue.dispatch_all(batch[1:])  # a repeat (a retried batch): queued once
        got = await ports.work.fetch(5, wait=PATIENCE)
        assert [json.loads(d.data)["id"] for d in got] == ["job-b0", "job-b1", "job-b2"]
        assert [d.headers and d.headers["traceparent"] for d in got] == [
            "00-t0-s-01", "00-t1-s-01", "00-t2-s-01",
        ]  # fmt: skip
        assert await ports.work.fetch(5, wait=0.2) == []
        for d in got:
            d.ack()

    async def test_fetch_takes_at_most_n_and_waits_only_when_there_is_nothing(
        self, ports: Ports
    ) -> None:
        for i in range(3):
            await ports.queue.dispatch(job(f"job-n{i}"), {})
        got = await ports.work.fetch(2, wait=PATIENCE)
        assert [json.loads(d.data)["id"] for d in got] == ["job-n0", "job-n1"]
        rest = await ports.work.fetch(5, wait=PATIENCE)
        assert [json.loads(d.data)["id"] for d in rest] == ["job-n2"]
        assert await ports.work.fetch(5, wait=0.2) == []
        later = asyncio.ensure_future(ports.work.fetch(5, wait=PATIENCE))
        await ports.queue.dispatch(job("job-late"), {})
        assert [json.loads(d.data)["id"] for d in await later] == ["job-late"]

    async def test_an_ack_removes_the_job_and_depth_counts_waiting_and_held(
        self, ports: Ports
    ) -> None:
        await ports.queue.dispatch(job("job-d1"), {})
        await ports.queue.dispatch(job("job-d2"), {})
        assert await ports.queue.depth() == (2, 0)
        delivery = await one(ports.work)
        assert await ports.queue.depth() == (1, 1)
        delivery.ack()
        await self.settled(ports, lambda fill, depth: fill[0] == 1 and depth == (1, 0))

    async def settled(self, ports: Ports, check: Any) -> None:
        """Acks are one-way: poll until the queue shows `check(fill, depth)`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while not check(await ports.queue.fill(), await ports.queue.depth()):
            assert loop.time() < deadline, (await ports.queue.fill(), await ports.queue.depth())
            await asyncio.sleep(0.01)  # polling the queue's counts

    async def test_a_nak_redelivers_with_a_higher_delivery_count(self, ports: Ports) -> None:
        seq = await ports.queue.dispatch(job("job-nak"), {})
        first = await one(ports.work)
        first.nak(delay=0.3)
        again = await one(ports.work)
        assert (again.seq, again.delivered) == (seq, 2)
        again.ack()

    async def test_an_unsettled_delivery_comes_again_after_the_ack_wait(self, ports: Ports) -> None:
        seq = await ports.queue.dispatch(job("job-slow"), {})
        first = await one(ports.work)
        assert first.delivered == 1
        again = await one(ports.work, wait=ACK_WAIT * 5)
        assert (again.seq, again.delivered) == (seq, 2)
        again.ack()

    async def test_in_progress_keeps_a_delivery_past_the_ack_wait(self, ports: Ports) -> None:
        await ports.queue.dispatch(job("job-long"), {})
        held = await one(ports.work)
        for _ in range(6):  # 2 ack-waits held, an in-progress ack every third of one
            assert await ports.work.fetch(1, wait=ACK_WAIT / 3) == []
            held.in_progress()
        held.ack()
        assert await ports.work.fetch(1, wait=ACK_WAIT * 1.5) == []

    async def test_at_max_deliver_the_job_is_given_up_with_an_advisory(self, ports: Ports) -> None:
        seq = await ports.queue.dispatch(job("job-lost"), {"traceparent": "00-t-s-01"})
        for n in range(1, MAX_DELIVER + 1):
            delivery = await one(ports.work)
            assert delivery.delivered == n
            delivery.nak()
        # The consumer gives up when it would deliver the job once more (JetStream decides on
        # the next pull): nothing is delivered, and an advisory says so.
        assert await ports.work.fetch(1, wait=ACK_WAIT * 2) == []
        advisory = await one(ports.advisories)
        doc = json.loads(advisory.data)
        assert (doc["stream_seq"], doc["deliveries"], doc["consumer"]) == (
            seq, MAX_DELIVER, "workers",
        )  # fmt: skip
        assert await ports.work.fetch(1, wait=ACK_WAIT * 2) == []  # never again
        queued = await ports.advisories.queued(seq)  # the given-up job is still there
        assert queued is not None and json.loads(queued[0])["id"] == "job-lost"
        assert queued[1] is not None and queued[1]["traceparent"] == "00-t-s-01"
        await ports.advisories.remove(seq)
        assert await ports.advisories.queued(seq) is None
        await ports.advisories.remove(seq)  # gone already: nothing happens
        advisory.ack()

    async def test_a_termed_job_is_never_delivered_again(self, ports: Ports) -> None:
        await ports.queue.dispatch(job("job-term"), {})
        (await one(ports.work)).term()
        assert await ports.work.fetch(1, wait=ACK_WAIT * 1.5) == []
        await self.settled(ports, lambda fill, depth: fill[0] == 0 and depth == (0, 0))

    async def test_a_full_queue_refuses_jobs_and_reports(self, ports: Ports) -> None:
        await self.fill_to_the_limit(ports)
        fill, limit = await ports.queue.fill()
        assert fill == limit > 0
        with pytest.raises(QueueFull):
            await ports.queue.dispatch(job("job-one-too-many"), {})
        with pytest.raises(QueueFull):
            await ports.sink.report_all([status("job-x", "running", 1)])

    # --- reports: the sink and the ingest's source ----------------------------------------------

    async def test_reports_arrive_in_publish_order_and_each_once(self, ports: Ports) -> None:
        batch = [status("job-r", "received", 1), status("job-r", "running", 2)]
        other = [status("job-q", "received", 1)]
        await ports.sink.report_all(batch)
        await ports.sink.report_all(other)
        await ports.sink.report_all(batch)  # sent again (a retry): stored once
        got = await ports.reports.fetch(10, wait=PATIENCE)
        assert [(d.subject, decode_status(d.data).status) for d in got] == [
            ("baker.jobs.status.job-r", "received"),
            ("baker.jobs.status.job-r", "running"),
            ("baker.jobs.status.job-q", "received"),
        ]
        assert [d.seq for d in got] == sorted(d.seq for d in got)
        assert got[0].headers is not None and "traceparent" in got[0].headers
        assert await ports.advisories.ingest_pending() == 3  # delivered, not yet acked
        for d in got:
            d.ack()
        assert await ports.reports.fetch(10, wait=0.2) == []

    async def test_a_nakd_report_comes_back_before_nothing_else_is_lost(self, ports: Ports) -> None:
        await ports.sink.report_all([status("job-s", "running", 1)])
        first = await one(ports.reports)
        first.nak()
        again = await one(ports.reports)
        assert (again.seq, again.delivered) == (first.seq, 2)
        again.term()
        assert await ports.reports.fetch(1, wait=0.2) == []

    async def test_a_closed_source_fetches_again(self, ports: Ports) -> None:
        await ports.queue.dispatch(job("job-c1"), {})
        (await one(ports.work)).ack()
        await ports.work.close()
        await ports.queue.dispatch(job("job-c2"), {})
        assert json.loads((await one(ports.work)).data)["id"] == "job-c2"

    # --- cancel signals ------------------------------------------------------------------------

    async def test_cancel_signals_are_heard_live_and_kept(self, ports: Ports) -> None:
        heard: list[tuple[str, str]] = []
        arrived = asyncio.Event()

        def on_cancel(job_id: str, reason: str) -> None:
            heard.append((job_id, reason))
            arrived.set()

        watching = await ports.queue.watch_cancels(on_cancel)
        await ports.queue.signal_cancel("job-k", "not needed")
        await asyncio.wait_for(arrived.wait(), PATIENCE)
        assert heard == [("job-k", "not needed")]
        assert await ports.queue.cancel_signal("job-k") == "not needed"
        assert await ports.queue.cancel_signal("job-never") is None
        await ports.queue.signal_cancel("job-j", None)
        assert await ports.queue.signalled_cancels() == {
            "job-k": "not needed", "job-j": "cancel requested",
        }  # fmt: skip
        await watching.unsubscribe()

    async def test_queued_jobs_are_those_with_any_message_in_the_stream(self, ports: Ports) -> None:
        assert await ports.queue.queued_jobs() == set()
        for job_id in ("job-q1", "job-q2", "job-q3"):
            await ports.queue.dispatch(job(job_id), {})
        first, second = await one(ports.work), await one(ports.work)
        assert [json.loads(d.data)["id"] for d in (first, second)] == ["job-q1", "job-q2"]
        await ports.sink.report_all([status("job-q2", "received", 1)])
        second.ack()  # job-q2's dispatch is gone; its report waits for the ingest
        await self.queued(ports, {"job-q1", "job-q2", "job-q3"})
        first.ack()  # job-q1 held by a worker until now, with no report: nothing left
        await self.queued(ports, {"job-q2", "job-q3"})
        (await one(ports.reports)).ack()  # job-q2's report ingested
        await self.queued(ports, {"job-q3"})

    async def queued(self, ports: Ports, expected: set[str]) -> None:
        """Acks are one-way: poll until `queued_jobs` is `expected`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while (found := await ports.queue.queued_jobs()) != expected:
            assert loop.time() < deadline, (found, expected)
            await asyncio.sleep(0.01)  # polling the queue's stream

    async def test_lanes_count_by_priority_and_a_paused_queue_delivers_nothing(
        self, ports: Ports
    ) -> None:
        high = DispatchMessage(**{**job("job-ph").model_dump(), "priority": "high"})
        await ports.queue.dispatch(high, {})
        await ports.queue.dispatch(job("job-pn"), {})
        lanes = await ports.queue.lanes()
        assert list(lanes) == ["high", "normal", "low"]
        assert [(s.queued, s.paused) for s in lanes.values()] == [
            (1, False), (1, False), (0, False),
        ]  # fmt: skip
        assert await ports.queue.depth() == (2, 0)
        await ports.queue.pause_lanes(True)
        await ports.queue.pause_lanes(True)  # idempotent
        assert all(s.paused for s in (await ports.queue.lanes()).values())
        assert await ports.work.fetch(1, wait=0.3) == []  # the normal lane: held
        await ports.queue.pause_lanes(False)
        assert json.loads((await one(ports.work)).data)["id"] == "job-pn"
        assert not any(s.paused for s in (await ports.queue.lanes()).values())

    async def test_a_batch_queues_each_job_on_its_own_lane(self, ports: Ports) -> None:
        low = DispatchMessage(**{**job("job-bl").model_dump(), "priority": "low"})
        high = DispatchMessage(**{**job("job-bh").model_dump(), "priority": "high"})
        await ports.queue.dispatch_all([(low, {}), (job("job-bn"), {}), (high, {})])
        lanes = await ports.queue.lanes()
        assert [s.queued for s in lanes.values()] == [1, 1, 1]
