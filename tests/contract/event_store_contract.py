"""One storage contract for every event store: the in-memory fake and JetStream subclass it.

Storage only: envelopes in, stored events out, the optimistic check, dedupe by event id, the
readers. Deciding commands and everything above is the executor's (`executor_contract.py`).
"""

from __future__ import annotations

import abc
import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.eventstore import (
    NEW,
    BadEvent,
    ConcurrencyConflict,
    EventStore,
    NotStored,
    Position,
    StoredEvent,
)
from domain.events import (
    DomainEvent,
    Envelope,
    JobDispatched,
    JobProgressed,
    JobStarted,
    encode_event,
)
from domain.ids import InvalidId
from tests.contract.chain_contract import HashChainContract


def dispatched() -> JobDispatched:
    return JobDispatched(job_type="command", payload={"command": "echo hi"})


def envelope(
    aggregate_id: str,
    event: DomainEvent,
    after: Position = NEW,
    *,
    index: int = 0,
    event_id: str | None = None,
    trace_id: str | None = None,
    aggregate: str = "job",
) -> Envelope:
    """The `index`-th envelope appended after `after` (as the executor builds them)."""
    return Envelope(
        event_id or str(uuid.uuid4()), aggregate, aggregate_id, after.version + index + 1,
        datetime.now(UTC), event, trace_id=trace_id,
    )  # fmt: skip


def position(stored: list[StoredEvent]) -> Position:
    return stored[-1].position


class EventStoreContract(HashChainContract):
    """Subclasses provide `store`, `other_writer(store)` and `put_raw(store, subject, data)`."""

    def envelope(
        self, aggregate_id: str, event: Any, after: Position, *, index: int = 0
    ) -> Envelope:
        return envelope(aggregate_id, event, after, index=index)

    @abc.abstractmethod
    async def other_writer(self, store: Any) -> EventStore: ...

    @abc.abstractmethod
    async def put_raw(self, store: Any, subject: str, data: bytes) -> int: ...

    async def test_append_to_a_new_aggregate_starts_at_version_one(self, store: EventStore) -> None:
        env = envelope("job-1", dispatched(), trace_id="t-1")
        stored, duplicate = await store.append("job", "job-1", [env], NEW)
        assert not duplicate
        assert [s.envelope.version for s in stored] == [1]
        assert stored[0].seq >= 1
        assert stored[0].subject == "baker.events.job.job-1"
        history = await store.load("job", "job-1")
        assert history.position == stored[0].position
        assert history.position == Position(stored[0].seq, 1, stored[0].envelope.hash or "")
        assert history.state.status == "dispatched"
        assert history.events[0].envelope.trace_id == "t-1"
        assert history.events[0].envelope.data == dispatched()
        assert history.events[0].envelope.event_id == env.event_id

    async def test_versions_are_contiguous_across_appends(self, store: EventStore) -> None:
        pos = NEW
        for batch in (
            [dispatched()],
            [JobStarted(attempt=1)],
            [JobProgressed(attempt=1, progress="a"), JobProgressed(attempt=1, progress="b")],
        ):
            envs = [envelope("job-v", e, pos, index=i) for i, e in enumerate(batch)]
            stored, _ = await store.append("job", "job-v", envs, pos)
            pos = position(stored)
        history = await store.load("job", "job-v")
        assert [e.envelope.version for e in history.events] == [1, 2, 3, 4]
        assert history.state.progress == "b"

    async def test_stale_expected_position_conflicts_and_stores_nothing(
        self, store: EventStore
    ) -> None:
        await store.append("job", "job-c", [envelope("job-c", dispatched())], NEW)
        with pytest.raises(ConcurrencyConflict):
            await store.append("job", "job-c", [envelope("job-c", dispatched())], NEW)
        assert len((await store.load("job", "job-c")).events) == 1

    async def test_exactly_one_of_racing_appends_wins_each_version(self, store: EventStore) -> None:
        stored, _ = await store.append("job", "job-r", [envelope("job-r", dispatched())], NEW)
        pos = stored[0].position
        writers = [store, *[await self.other_writer(store) for _ in range(4)]]
        results = await asyncio.gather(
            *[
                w.append(
                    "job",
                    "job-r",
                    [envelope("job-r", JobStarted(attempt=1, worker_id=f"w{i}"), pos)],
                    pos,
                )
                for i, w in enumerate(writers)
            ],
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, tuple)]
        assert len(wins) == 1
        assert all(isinstance(r, ConcurrencyConflict) for r in results if not isinstance(r, tuple))
        assert len((await store.load("job", "job-r")).events) == 2

    async def test_the_same_event_id_again_is_stored_once_and_reported_a_duplicate(
        self, store: EventStore
    ) -> None:
        env = envelope("job-d", dispatched(), event_id=str(uuid.uuid4()))
        first, duplicate = await store.append("job", "job-d", [env], NEW)
        assert not duplicate
        again, duplicate = await store.append("job", "job-d", [env], NEW)
        history = await store.load("job", "job-d")
        assert duplicate and len(history.events) == 1
        assert again[0].seq == first[0].seq == history.events[0].seq
        assert again[0].envelope.event_id == env.event_id

    async def test_append_each_stores_one_event_per_aggregate_in_one_go(
        self, store: EventStore
    ) -> None:
        positions = {}
        for job in ("job-e1", "job-e2", "job-e3"):
            stored, _ = await store.append("job", job, [envelope(job, dispatched())], NEW)
            positions[job] = position(stored)
        other = await self.other_writer(store)  # job-e2 moves on behind our back
        started = envelope("job-e2", JobStarted(attempt=1), positions["job-e2"])
        await other.append("job", "job-e2", [started], positions["job-e2"])
        again = envelope("job-e3", JobStarted(attempt=1), positions["job-e3"])
        await store.append("job", "job-e3", [again], positions["job-e3"])
        batch = [
            ("job", "job-e1", envelope("job-e1", JobStarted(attempt=1), positions["job-e1"]),
             positions["job-e1"]),
            ("job", "job-e2", envelope("job-e2", JobStarted(attempt=2), positions["job-e2"]),
             positions["job-e2"]),
            ("job", "job-e3", again, positions["job-e3"]),  # stored before: a duplicate
        ]  # fmt: skip
        e1, e2, e3 = await store.append_each(batch)
        assert isinstance(e1, StoredEvent) and e1.envelope.event_id == batch[0][2].event_id
        assert e1.seq == (await store.load("job", "job-e1")).position.seq
        assert isinstance(e2, ConcurrencyConflict)
        # Refused either way (JetStream 2.11+ checks the expected sequence before the id).
        assert isinstance(e3, (NotStored, ConcurrencyConflict))
        for job in ("job-e1", "job-e2", "job-e3"):
            assert len((await store.load("job", job)).events) == 2

    async def test_read_all_returns_every_aggregate_in_stream_order(
        self, store: EventStore
    ) -> None:
        start = await store.head_seq()
        for i in range(5):
            await store.append("job", f"job-a{i}", [envelope(f"job-a{i}", dispatched())], NEW)
        items = [e async for e in store.read_all(start + 1)]
        assert [e.envelope.aggregate_id for e in items if isinstance(e, StoredEvent)] == [
            f"job-a{i}" for i in range(5)
        ]
        seqs = [e.seq for e in items]
        assert seqs == sorted(seqs) and seqs[-1] == await store.head_seq()
        limited = [e async for e in store.read_all(start + 1, until_seq=seqs[1])]
        assert [e.seq for e in limited] == seqs[:2]
        assert [e async for e in store.read_all(seqs[-1] + 1)] == []

    async def test_tail_follows_new_events(self, store: EventStore) -> None:
        start = await store.head_seq() + 1
        seen: list[str] = []

        async def follow() -> None:
            async for item in store.tail(start):
                assert isinstance(item, StoredEvent)
                seen.append(item.envelope.aggregate_id)
                if len(seen) == 3:
                    return

        task = asyncio.create_task(follow())
        for i in range(3):
            await store.append("job", f"job-t{i}", [envelope(f"job-t{i}", dispatched())], NEW)
        await asyncio.wait_for(task, 10)
        assert seen == ["job-t0", "job-t1", "job-t2"]

    async def test_unreadable_stored_messages_are_skipped_counted_and_reported(
        self, store: EventStore
    ) -> None:
        first, _ = await store.append("job", "job-b", [envelope("job-b", dispatched())], NEW)
        bad_seq = await self.put_raw(store, "baker.events.job.job-b", b"{not json")
        unknown = Envelope("e-x", "job", "job-b", 2, first[0].envelope.occurred_at, dispatched())
        doc = encode_event(unknown).replace(b'"JobDispatched"', b'"NoSuchEvent"')
        await self.put_raw(store, "baker.events.job.job-b", doc)
        before = store.stats.bad_events
        history = await store.load("job", "job-b")
        assert history.bad[0].seq == bad_seq
        assert "not valid JSON" in history.bad[0].error
        assert "unknown event type 'NoSuchEvent'" in history.bad[1].error
        assert store.stats.bad_events == before + 2
        assert len(history.events) == 1 and history.state.status == "dispatched"
        # appending after the unreadable messages still works
        started = envelope("job-b", JobStarted(attempt=1), history.position)
        await store.append("job", "job-b", [started], history.position)
        every = [e async for e in store.read_all(first[0].seq, include_bad=True)]
        assert sum(isinstance(e, BadEvent) for e in every) == 2
        readable = [e async for e in store.read_all(first[0].seq)]
        assert all(isinstance(e, StoredEvent) for e in readable) and len(readable) == 2

    async def test_ids_that_are_not_subject_tokens_are_refused(self, store: EventStore) -> None:
        for bad in ("a.b", "*", ">", "has space", ""):
            with pytest.raises(InvalidId):
                await store.append("job", bad, [envelope(bad, dispatched())], NEW)
        with pytest.raises(InvalidId):
            await store.append("jobs", "job-1", [envelope("job-1", dispatched())], NEW)
        assert await store.head_seq() == 0

    async def test_tail_batches_deliver_everything_in_order_then_idle(
        self, store: EventStore
    ) -> None:
        start = await store.head_seq() + 1
        for i in range(7):
            await store.append("job", f"job-tb{i}", [envelope(f"job-tb{i}", dispatched())], NEW)
        bad = await self.put_raw(store, "baker.events.job.job-tb0", b"garbage")
        seen: list[int] = []
        kinds: list[str] = []
        batches = store.tail_batches(start, max_batch=3, max_wait=0.05, idle=0.2)
        async for batch in batches:
            if not batch:  # idle: everything so far was delivered
                break
            assert len(batch) <= 3
            seen += [item.seq for item in batch]
            kinds += [type(item).__name__ for item in batch]
        await batches.aclose()
        assert seen == list(range(start, bad + 1))
        assert kinds == ["StoredEvent"] * 7 + ["BadEvent"]

    async def test_a_batch_that_is_not_full_closes_after_max_wait(self, store: EventStore) -> None:
        start = await store.head_seq() + 1
        await store.append("job", "job-mw", [envelope("job-mw", dispatched())], NEW)
        batches = store.tail_batches(start, max_batch=1000, max_wait=0.2, idle=60.0)
        batch = await asyncio.wait_for(anext(batches), 20)  # neither the idle nor 1,000 events
        await batches.aclose()
        assert [item.seq for item in batch] == [start]

    async def test_a_batch_stays_open_for_more_until_it_is_full(self, store: EventStore) -> None:
        start = await store.head_seq() + 1
        await store.append("job", "job-open-0", [envelope("job-open-0", dispatched())], NEW)
        batches = store.tail_batches(start, max_batch=3, max_wait=30.0, idle=60.0)
        first = asyncio.ensure_future(anext(batches))
        for _ in range(5):  # zero-time yields: a reader that can already take event 0 does
            await asyncio.sleep(0)
        for i in (1, 2):
            env = envelope(f"job-open-{i}", dispatched())
            await store.append("job", f"job-open-{i}", [env], NEW)
        batch = await asyncio.wait_for(first, 20)  # full at 3, long before the 30 s window
        await batches.aclose()
        assert [item.seq for item in batch] == [start, start + 1, start + 2]
