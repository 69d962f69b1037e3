"""An in-memory job queue with JetStream's work-queue semantics, behind the job ports
(`services.ports.jobs`): `FakeJobQueue` is the Brain's `JobQueue` and a worker's `ReportSink`
and `CancelSignals`; `work_source()`, `report_source()` and `advisories()` are the durable
consumers' deliveries. It passes `tests/contract/job_ports_contract.py`, as the NATS adapters do.

What it keeps of JetStream: one stream with a message limit (discard new: `QueueFull`) and
message-id dedupe within the duplicate window; a message belongs to the consumer whose subjects
it matches and is removed when that consumer acks or terms it; an unsettled delivery comes
again after the ack-wait (an in-progress ack restarts it), a nak'd one after its delay, each
time with a higher delivery count; at max deliver the consumer gives up on it, leaves it in the
stream and publishes a max-deliveries advisory. Time is the clock it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from adapters.nats.streams import LANE_CONSUMERS
from domain.priority import PRIORITIES, lane_subject, subject_lane
from domain.queue import (
    LaneState,
    QueueFull,
    QueueUnavailable,
    Report,
    dispatch_msg_id,
    job_of_message,
)
from domain.wire import DispatchMessage
from services.ports.clock import Clock


@dataclass
class Stored:
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


class FakeStream:
    """Messages by stream sequence, and a way to wait for a change or for time to pass."""

    def __init__(self, clock: Clock, on_gave_up: Callable[[str, int, int], None]) -> None:
        self.clock = clock
        self.messages: dict[int, Stored] = {}
        self.last_seq = 0
        self.consumers: list[FakeConsumer] = []
        self.gave_up = on_gave_up
        self._changed = asyncio.Event()

    def add(self, subject: str, data: bytes, headers: dict[str, str]) -> Stored:
        self.last_seq += 1
        msg = self.messages[self.last_seq] = Stored(self.last_seq, subject, data, headers)
        self.notify()
        return msg

    def remove(self, seq: int) -> None:
        self.messages.pop(seq, None)
        for consumer in self.consumers:
            consumer.pending.pop(seq, None)
            consumer.given_up.discard(seq)

    def notify(self) -> None:
        self._changed.set()

    async def changed_or(self, seconds: float) -> None:
        """Wait until something is stored or settled, or `seconds` pass on the clock."""
        self._changed.clear()
        changed = asyncio.ensure_future(self._changed.wait())
        timer = asyncio.ensure_future(self.clock.sleep(max(seconds, 0.0)))
        try:
            await asyncio.wait({changed, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (changed, timer):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter


@dataclass
class Pending:
    """A consumer's view of one message: how often delivered, and when it may go out again
    (None: out now, waiting for its settlement until `deadline`)."""

    delivered: int = 0
    ready_at: float | None = 0.0
    deadline: float = 0.0
    token: int = 0  # the current delivery; a settlement of an older one is ignored


class FakeDelivery:
    def __init__(
        self, consumer: FakeConsumer, msg: Stored, delivered: int, token: int, pending: int
    ) -> None:
        self._consumer = consumer
        self.pending = pending
        self._token = token
        self.data = msg.data
        self.headers: Mapping[str, str] | None = dict(msg.headers) or None
        self.subject = msg.subject
        self.seq = msg.seq
        self.delivered = delivered

    def ack(self) -> None:
        self._consumer.settle(self.seq, self._token, "ack")

    def nak(self, delay: float | None = None) -> None:
        self._consumer.settle(self.seq, self._token, "nak", delay or 0.0)

    def in_progress(self) -> None:
        self._consumer.settle(self.seq, self._token, "progress")

    def term(self) -> None:
        self._consumer.settle(self.seq, self._token, "term")


class FakeConsumer:
    """A durable pull consumer of a fake stream (`DeliverySource`). `removes`: acked or
    termed messages leave the stream (a work queue), else they stay (a limits stream)."""

    def __init__(
        self,
        stream: FakeStream,
        name: str,
        matches: Callable[[str], bool],
        *,
        ack_wait: float,
        max_deliver: int = -1,
        removes: bool = True,
    ) -> None:
        self.stream = stream
        self.name = name
        self.matches = matches
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver  # -1: for ever
        self.removes = removes
        self.pending: dict[int, Pending] = {}
        self.given_up: set[int] = set()
        self.done: set[int] = set()  # settled for good, in a stream that keeps them
        self.closed = 0
        self.paused = False  # a paused consumer delivers nothing (JetStream's consumer pause)
        stream.consumers.append(self)

    def _mine(self, msg: Stored) -> bool:
        return (
            self.matches(msg.subject)
            and msg.seq not in self.given_up
            and (msg.seq not in self.done)
        )

    def _available(self, now: float) -> list[Stored]:
        if self.paused:
            return []
        out = []
        for msg in self.stream.messages.values():
            if not self._mine(msg):
                continue
            p = self.pending.setdefault(msg.seq, Pending())
            due = now >= (p.deadline if p.ready_at is None else p.ready_at)
            if due and not self._gives_up(msg.seq, p):
                out.append(msg)
        return out

    def _gives_up(self, seq: int, p: Pending) -> bool:
        """A message due again after its last allowed delivery: given up (it stays in the
        stream), with an advisory."""
        if self.max_deliver < 0 or p.delivered < self.max_deliver:
            return False
        self.given_up.add(seq)
        self.stream.gave_up(self.name, seq, p.delivered)
        return True

    def _next_due(self) -> float | None:
        times = [
            p.deadline if p.ready_at is None else p.ready_at
            for seq, p in self.pending.items()
            if seq in self.stream.messages and seq not in self.given_up and seq not in self.done
        ]
        return min(times, default=None)

    async def fetch(self, n: int, wait: float) -> list[FakeDelivery]:
        clock = self.stream.clock
        deadline = clock.now() + wait
        while True:
            available = self._available(clock.now())
            if available or clock.now() >= deadline:
                left = len(available)
                return [self._deliver(msg, left - i - 1) for i, msg in enumerate(available[:n])]
            due = self._next_due()
            until = deadline if due is None else min(deadline, max(due, clock.now()))
            await self.stream.changed_or(until - clock.now())

    def _deliver(self, msg: Stored, pending: int) -> FakeDelivery:
        p = self.pending[msg.seq]
        p.delivered += 1
        p.token += 1
        p.ready_at = None
        p.deadline = self.stream.clock.now() + self.ack_wait
        return FakeDelivery(self, msg, p.delivered, p.token, pending)

    def settle(self, seq: int, token: int, how: str, delay: float = 0.0) -> None:
        p = self.pending.get(seq)
        if p is None or p.token != token or p.ready_at is not None:
            return  # an older delivery, or settled already: ignored, as JetStream does
        now = self.stream.clock.now()
        if how in ("ack", "term"):
            if self.removes:
                self.stream.remove(seq)
            else:
                self.done.add(seq)
                self.pending.pop(seq, None)
        elif how == "nak":
            p.ready_at = now + delay
        elif how == "progress":
            p.deadline = now + self.ack_wait
        self.stream.notify()

    def counts(self) -> tuple[int, int]:
        """(waiting to be delivered, delivered and not settled), as JetStream's num_pending
        and num_ack_pending."""
        waiting = out = 0
        for msg in self.stream.messages.values():
            if not self._mine(msg):
                continue
            p = self.pending.get(msg.seq)
            if p is not None and p.ready_at is None:
                out += 1
            else:
                waiting += 1
        return waiting, out

    async def close(self) -> None:
        self.closed += 1


class FakeAdvisories(FakeConsumer):
    """The max-deliveries advisories (`Advisories` port) and the queued messages they name."""

    def __init__(self, queue: FakeJobQueue) -> None:
        super().__init__(queue.advisory_stream, "brain-advisories", lambda _s: True,
                         ack_wait=30.0, removes=False)  # fmt: skip
        self._queue = queue

    async def ingest_pending(self) -> int:
        return sum(self._queue.ingest.counts())

    async def queued(self, seq: int) -> tuple[bytes, Mapping[str, str] | None] | None:
        msg = self._queue.jobs.messages.get(seq)
        return None if msg is None else (msg.data, dict(msg.headers) or None)

    async def remove(self, seq: int) -> None:
        self._queue.jobs.remove(seq)


def _is_report(subject: str) -> bool:
    parts = subject.split(".")
    return len(parts) == 4 and parts[:2] == ["baker", "jobs"] and parts[2] != "dispatch"


class FakeJobQueue:
    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_messages: int = 10_000,
        ack_wait: float = 60.0,
        max_deliver: int = 3,
        duplicate_window: float = 120.0,
    ) -> None:
        self.clock = clock
        self.max_messages = max_messages
        self.duplicate_window = duplicate_window
        self.jobs = FakeStream(clock, self._advise)  # BAKER_JOBS
        self.advisory_stream = FakeStream(clock, self._advise)  # BAKER_ADVISORIES
        self.msg_ids: dict[str, tuple[int, float]] = {}  # id -> (seq, when stored)
        self.cancels: dict[str, str] = {}
        self.unavailable = False  # set it: every publish raises `QueueUnavailable`
        self.published: list[Stored] = []  # everything ever stored in BAKER_JOBS, in order
        self._watchers: list[Callable[[str, str], None]] = []
        self._lane_watchers: list[Callable[[str], None]] = []
        self.lanes_by_name = {
            lane: FakeConsumer(
                self.jobs,
                LANE_CONSUMERS[lane],
                lane_subject(lane).__eq__,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
            )
            for lane in PRIORITIES
        }
        self.workers = self.lanes_by_name["normal"]  # the first wave's `workers`
        self.ingest = FakeConsumer(self.jobs, "brain-ingest", _is_report, ack_wait=30.0)
        self._advisories = FakeAdvisories(self)
        self.closed = 0

    # --- the consumers --------------------------------------------------------------------

    def work_source(self) -> FakeConsumer:
        """The `normal` lane alone (the first wave's consumer, as a seed worker sees it)."""
        return self.workers

    def lane_sources(self) -> dict[str, FakeConsumer]:
        """Every lane's consumer, high first (what our workers fetch from)."""
        return dict(self.lanes_by_name)

    def report_source(self) -> FakeConsumer:
        return self.ingest

    def advisories(self) -> FakeAdvisories:
        return self._advisories

    # --- storing --------------------------------------------------------------------------

    def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        if self.unavailable:
            raise QueueUnavailable(f"{subject}: the fake queue is unavailable")
        msg_id = headers.get("Nats-Msg-Id")
        seen = self.msg_ids.get(msg_id) if msg_id is not None else None
        if seen is not None and self.clock.now() - seen[1] < self.duplicate_window:
            return seen[0]  # a duplicate within the window: stored once
        if len(self.jobs.messages) >= self.max_messages:
            raise QueueFull(f"the job queue is full (maximum messages {self.max_messages})")
        msg = self.jobs.add(subject, data, headers)
        self.published.append(msg)
        lane = subject_lane(subject) if subject.startswith("baker.jobs.dispatch.") else None
        for hint in list(self._lane_watchers) if lane is not None else ():
            hint(lane)
        if msg_id is not None:
            self.msg_ids[msg_id] = (msg.seq, self.clock.now())
        return msg.seq

    def _advise(self, consumer: str, seq: int, deliveries: int) -> None:
        doc = {"stream": "BAKER_JOBS", "consumer": consumer, "stream_seq": seq,
               "deliveries": deliveries}  # fmt: skip
        subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.BAKER_JOBS.{consumer}"
        self.advisory_stream.add(subject, json.dumps(doc).encode(), {})

    # --- JobQueue ---------------------------------------------------------------------------

    async def dispatch(self, msg: DispatchMessage, headers: dict[str, str]) -> int:
        return self._publish(
            lane_subject(msg.priority),
            msg.encode(),
            {**headers, "Nats-Msg-Id": dispatch_msg_id(msg)},
        )

    async def dispatch_all(self, items: Sequence[tuple[DispatchMessage, dict[str, str]]]) -> None:
        for msg, headers in items:
            await self.dispatch(msg, headers)

    async def signal_cancel(self, job_id: str, reason: str | None) -> None:
        if self.unavailable:
            raise QueueUnavailable(f"cancel of {job_id}: the fake queue is unavailable")
        self.cancels[job_id] = reason or "cancel requested"
        for watcher in list(self._watchers):
            watcher(job_id, self.cancels[job_id])

    async def watch_lanes(self, on_queued: Callable[[str], None]) -> Watching:
        self._lane_watchers.append(on_queued)
        return Watching(self._lane_watchers, on_queued)

    async def cancel_signal(self, job_id: str) -> str | None:
        return self.cancels.get(job_id)

    async def signalled_cancels(self) -> dict[str, str]:
        return dict(self.cancels)

    async def watch_cancels(self, on_cancel: Callable[[str, str], None]) -> Watching:
        self._watchers.append(on_cancel)
        return Watching(self._watchers, on_cancel)

    async def fill(self) -> tuple[int, int]:
        return len(self.jobs.messages), self.max_messages

    async def depth(self) -> tuple[int, int]:
        counts = [consumer.counts() for consumer in self.lanes_by_name.values()]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    async def lanes(self) -> dict[str, LaneState]:
        out = {}
        for lane, consumer in self.lanes_by_name.items():
            queued, in_flight = consumer.counts()
            out[lane] = LaneState(queued, in_flight, consumer.paused)
        return out

    async def pause_lanes(self, paused: bool) -> None:
        if self.unavailable:
            raise QueueUnavailable("pause: the fake queue is unavailable")
        for consumer in self.lanes_by_name.values():
            consumer.paused = paused
        self.jobs.notify()  # a resumed consumer's waiting fetches look again

    async def queued_jobs(self) -> set[str]:
        found = (job_of_message(m.subject, m.data) for m in self.jobs.messages.values())
        return {job for job in found if job is not None}

    async def close(self) -> None:
        self.closed += 1

    # --- ReportSink -------------------------------------------------------------------------

    async def report_all(self, reports: Sequence[Report]) -> None:
        for r in reports:
            headers = {**r.headers, "Nats-Msg-Id": r.msg_id}
            self._publish(f"baker.jobs.{r.kind}.{r.job_id}", r.payload, headers)


@dataclass
class Watching:
    watchers: list[Any]
    watcher: Any

    async def unsubscribe(self) -> None:
        with contextlib.suppress(ValueError):
            self.watchers.remove(self.watcher)
