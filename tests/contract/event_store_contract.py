"""One contract for every event store: the in-memory fake and JetStream both subclass it."""

from __future__ import annotations

import abc
import asyncio
from typing import Any

import pytest

from adapters.eventstore import (
    NEW,
    BadEvent,
    ConcurrencyConflict,
    EventStore,
    Outcome,
    Position,
    StoredEvent,
)
from domain.commands import DispatchJob, RecordStatus, RequestCancel
from domain.events import (
    Envelope,
    JobDispatched,
    JobProgressed,
    JobStarted,
    TransitionRejected,
    encode_event,
)
from domain.ids import InvalidId
from domain.specs import parse_job_spec

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


def dispatched() -> JobDispatched:
    return JobDispatched(job_type="command", payload={"command": "echo hi"})


class EventStoreContract(abc.ABC):
    """Subclasses provide `store`, `other_writer(store)` and `put_raw(store, subject, data)`."""

    @abc.abstractmethod
    async def other_writer(self, store: Any) -> EventStore: ...

    @abc.abstractmethod
    async def put_raw(self, store: Any, subject: str, data: bytes) -> int: ...

    async def test_append_to_a_new_aggregate_starts_at_version_one(self, store: EventStore) -> None:
        stored = await store.append("job", "job-1", [dispatched()], NEW, trace_id="t-1")
        assert [s.envelope.version for s in stored] == [1]
        assert stored[0].seq >= 1
        assert stored[0].subject == "baker.events.job.job-1"
        history = await store.load("job", "job-1")
        assert history.position == Position(stored[0].seq, 1)
        assert history.state.status == "dispatched"
        assert history.events[0].envelope.trace_id == "t-1"
        assert history.events[0].envelope.data == dispatched()

    async def test_versions_are_contiguous_across_appends(self, store: EventStore) -> None:
        pos = NEW
        for batch in (
            [dispatched()],
            [JobStarted(attempt=1)],
            [JobProgressed(attempt=1, progress="a"), JobProgressed(attempt=1, progress="b")],
        ):
            stored = await store.append("job", "job-v", batch, pos)
            pos = Position(stored[-1].seq, stored[-1].envelope.version)
        history = await store.load("job", "job-v")
        assert [e.envelope.version for e in history.events] == [1, 2, 3, 4]
        assert history.state.progress == "b"

    async def test_stale_expected_position_conflicts_and_stores_nothing(
        self, store: EventStore
    ) -> None:
        await store.append("job", "job-c", [dispatched()], NEW)
        with pytest.raises(ConcurrencyConflict):
            await store.append("job", "job-c", [dispatched()], NEW)
        assert len((await store.load("job", "job-c")).events) == 1

    async def test_exactly_one_of_racing_appends_wins_each_version(self, store: EventStore) -> None:
        stored = await store.append("job", "job-r", [dispatched()], NEW)
        pos = Position(stored[0].seq, 1)
        writers = [store, *[await self.other_writer(store) for _ in range(4)]]
        results = await asyncio.gather(
            *[
                w.append("job", "job-r", [JobStarted(attempt=1, worker_id=f"w{i}")], pos)
                for i, w in enumerate(writers)
            ],
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, list)]
        assert len(wins) == 1
        assert all(isinstance(r, ConcurrencyConflict) for r in results if not isinstance(r, list))
        assert len((await store.load("job", "job-r")).events) == 2

    async def test_racing_executes_all_land_once_with_contiguous_versions(
        self, store: EventStore
    ) -> None:
        await store.execute("job", "job-x", DispatchJob(spec=SPEC))
        await store.execute("job", "job-x", RecordStatus(status="running", attempt=1))
        writers = [store, *[await self.other_writer(store) for _ in range(3)]]
        texts = [f"step {i}" for i in range(12)]
        outcomes = await asyncio.gather(
            *[
                writers[i % len(writers)].execute(
                    "job", "job-x", RecordStatus(status="running", attempt=1, progress=text)
                )
                for i, text in enumerate(texts)
            ]
        )
        assert all(o.changed for o in outcomes)
        history = await store.load("job", "job-x")
        progress = [
            e.envelope.data.progress
            for e in history.events
            if isinstance(e.envelope.data, JobProgressed)
        ]
        assert sorted(progress) == sorted(texts)  # none lost, none duplicated
        assert [e.envelope.version for e in history.events] == list(range(1, 15))

    async def test_execute_records_rejections_and_ignores_duplicates(
        self, store: EventStore
    ) -> None:
        await store.execute("job", "job-e", DispatchJob(spec=SPEC))
        done = await store.execute("job", "job-e", RecordStatus(status="running"))
        assert done.changed and done.state.status == "running"
        dup = await store.execute("job", "job-e", RecordStatus(status="running"))
        assert dup.appended == [] and dup.rejected is None
        await store.execute("job", "job-e", RecordStatus(status="completed", result="ok"))
        late = await store.execute("job", "job-e", RecordStatus(status="running"))
        assert late.rejected is not None and "terminal" in late.rejected.reason
        assert isinstance(late.appended[0].envelope.data, TransitionRejected)
        refused = await store.execute("job", "job-e", RequestCancel())
        assert refused.rejected is not None
        history = await store.load("job", "job-e")
        assert history.state.status == "completed"
        assert [e.envelope.type for e in history.events] == [
            "JobDispatched", "JobStarted", "JobCompleted",
            "TransitionRejected", "TransitionRejected",
        ]  # fmt: skip

    async def test_execute_on_a_missing_aggregate_rejects_without_creating_it(
        self, store: EventStore
    ) -> None:
        outcome = await store.execute("job", "job-none", RecordStatus(status="running"))
        assert outcome.rejected is not None and outcome.appended == []
        assert not (await store.load("job", "job-none")).exists

    async def test_execute_sees_writes_of_another_writer(self, store: EventStore) -> None:
        other = await self.other_writer(store)
        await store.execute("job", "job-o", DispatchJob(spec=SPEC))
        await other.execute("job", "job-o", RecordStatus(status="running"))
        # `store` still caches "dispatched": its append conflicts, it reloads and re-decides.
        outcome = await store.execute("job", "job-o", RecordStatus(status="completed"))
        assert outcome.state.status == "completed" and outcome.attempts == 2

    async def test_execute_each_decides_and_appends_as_execute_would(
        self, store: EventStore
    ) -> None:
        for job in ("job-m1", "job-m2", "job-m3"):
            await store.execute("job", job, DispatchJob(spec=SPEC))
        store.forget("job", "job-m3")  # not cached: goes through `execute`
        items = [
            ("job", "job-m1", RecordStatus(status="running", attempt=1), "ab" * 16, "c-1"),
            ("job", "job-m2", RecordStatus(status="received", attempt=1), None, "c-2"),
            ("job", "job-m3", RecordStatus(status="running", attempt=1), None, "c-3"),
            ("job", "job-none", RecordStatus(status="running"), None, "c-4"),
        ]
        outcomes = await store.execute_each(items)
        assert all(isinstance(o, Outcome) for o in outcomes)
        m1, m2, m3, none = (o for o in outcomes if isinstance(o, Outcome))
        assert (m1.state.status, m2.state.status, m3.state.status) == (
            "running",
            "received",
            "running",
        )
        assert none.rejected is not None and not (await store.load("job", "job-none")).exists
        history = await store.load("job", "job-m1")
        assert [e.envelope.type for e in history.events] == ["JobDispatched", "JobStarted"]
        assert [(e.seq, e.envelope.trace_id) for e in m1.appended] == [
            (history.events[-1].seq, "ab" * 16)
        ]
        assert m1.position == history.position
        # The same causes again (redelivered messages) store nothing new.
        again = await store.execute_each(items[:3])
        assert not any(isinstance(o, Outcome) and o.changed for o in again)
        for job in ("job-m1", "job-m2", "job-m3"):
            assert len((await store.load("job", job)).events) == 2

    async def test_execute_each_takes_a_conflict_through_execute(self, store: EventStore) -> None:
        other = await self.other_writer(store)
        for job in ("job-c1", "job-c2"):
            await store.execute("job", job, DispatchJob(spec=SPEC))
        await other.execute("job", "job-c1", RecordStatus(status="running", attempt=1))
        c1, c2 = await store.execute_each([
            ("job", "job-c1", RecordStatus(status="completed", result="ok"), None, "k-1"),
            ("job", "job-c2", RecordStatus(status="running", attempt=1), None, "k-2"),
        ])  # fmt: skip
        assert isinstance(c1, Outcome) and isinstance(c2, Outcome)
        assert c1.state.status == "completed" and c2.state.status == "running"
        assert store.stats.conflicts >= 1
        history = await store.load("job", "job-c1")
        assert [e.envelope.type for e in history.events] == [
            "JobDispatched", "JobStarted", "JobCompleted",
        ]  # fmt: skip

    async def test_execute_each_appends_cached_aggregates_itself(self, store: EventStore) -> None:
        """The point of it: no `execute` (lock, coroutine chain, one round trip) per command."""
        for job in ("job-p1", "job-p2"):
            await store.execute("job", job, DispatchJob(spec=SPEC))

        async def no_execute(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("went through execute")

        store.execute = no_execute  # type: ignore[method-assign]
        outcomes = await store.execute_each([
            ("job", "job-p1", RecordStatus(status="running", attempt=1), None, "p-1"),
            ("job", "job-p2", RecordStatus(status="received", attempt=1), None, "p-2"),
        ])  # fmt: skip
        assert [o.state.status for o in outcomes if isinstance(o, Outcome)] == [
            "running", "received",
        ]  # fmt: skip
        del store.execute  # the class's own again
        assert (await store.load("job", "job-p1")).state.status == "running"

    async def test_execute_each_takes_one_command_per_aggregate(self, store: EventStore) -> None:
        item = ("job", "job-twice", RecordStatus(status="running"), None, "k")
        with pytest.raises(ValueError, match="one command per aggregate"):
            await store.execute_each([item, item])

    async def test_same_cause_appended_twice_is_stored_once(self, store: EventStore) -> None:
        await store.append("job", "job-d", [dispatched()], NEW, causation_id="msg-1")
        again = await store.append("job", "job-d", [dispatched()], NEW, causation_id="msg-1")
        history = await store.load("job", "job-d")
        assert len(history.events) == 1
        assert again[0].seq == history.events[0].seq
        assert store.stats.duplicates == 1

    async def test_read_all_returns_every_aggregate_in_stream_order(
        self, store: EventStore
    ) -> None:
        start = await store.head_seq()
        for i in range(5):
            await store.append("job", f"job-a{i}", [dispatched()], NEW)
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
            await store.append("job", f"job-t{i}", [dispatched()], NEW)
        await asyncio.wait_for(task, 10)
        assert seen == ["job-t0", "job-t1", "job-t2"]

    async def test_unreadable_stored_messages_are_skipped_counted_and_reported(
        self, store: EventStore
    ) -> None:
        first = await store.append("job", "job-b", [dispatched()], NEW)
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
        await store.append("job", "job-b", [JobStarted(attempt=1)], history.position)
        every = [e async for e in store.read_all(first[0].seq, include_bad=True)]
        assert sum(isinstance(e, BadEvent) for e in every) == 2
        readable = [e async for e in store.read_all(first[0].seq)]
        assert all(isinstance(e, StoredEvent) for e in readable) and len(readable) == 2

    async def test_ids_that_are_not_subject_tokens_are_refused(self, store: EventStore) -> None:
        for bad in ("a.b", "*", ">", "has space", ""):
            with pytest.raises(InvalidId):
                await store.append("job", bad, [dispatched()], NEW)
        with pytest.raises(InvalidId):
            await store.append("jobs", "job-1", [dispatched()], NEW)

    async def test_tail_batches_deliver_everything_in_order_then_idle(
        self, store: EventStore
    ) -> None:
        start = await store.head_seq() + 1
        for i in range(7):
            await store.append("job", f"job-tb{i}", [dispatched()], NEW)
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
        await store.append("job", "job-mw", [dispatched()], NEW)
        batches = store.tail_batches(start, max_batch=1000, max_wait=0.2, idle=60.0)
        batch = await asyncio.wait_for(anext(batches), 20)  # neither the idle nor 1,000 events
        await batches.aclose()
        assert [item.seq for item in batch] == [start]

    async def test_a_batch_stays_open_for_more_until_it_is_full(self, store: EventStore) -> None:
        start = await store.head_seq() + 1
        await store.append("job", "job-open-0", [dispatched()], NEW)
        batches = store.tail_batches(start, max_batch=3, max_wait=30.0, idle=60.0)
        first = asyncio.ensure_future(anext(batches))
        for _ in range(5):  # zero-time yields: a reader that can already take event 0 does
            await asyncio.sleep(0)
        for i in (1, 2):
            await store.append("job", f"job-open-{i}", [dispatched()], NEW)
        batch = await asyncio.wait_for(first, 20)  # full at 3, long before the 30 s window
        await batches.aclose()
        assert [item.seq for item in batch] == [start, start + 1, start + 2]
