"""The hash chain (DESIGN §12) as every event store keeps it, on every append path: `append`,
the pipelined `append_each`, and the executor's `execute` and `execute_each` above them.
Mixed into `EventStoreContract`, so the in-memory and the JetStream store both run it."""

from __future__ import annotations

import abc
import asyncio
import itertools
from typing import Any

import orjson

from adapters.eventstore import NEW, EventStore, StoredEvent
from domain.audit import verify
from domain.commands import DispatchJob, RecordStatus
from domain.events import (
    Envelope,
    JobDispatched,
    JobProgressed,
    JobStarted,
    document_hash,
    encode_event,
)
from domain.specs import parse_job_spec
from services.executor import CommandExecutor

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


def _dispatched() -> JobDispatched:
    return JobDispatched(job_type="command", payload={"command": "echo hi"})


async def assert_linear_chain(store: EventStore, aggregate: str, aggregate_id: str) -> list[Any]:
    """The aggregate's stored documents, after checking they form one unbroken chain."""
    history = await store.load(aggregate, aggregate_id)
    docs = [orjson.loads(e.raw) for e in history.events]
    assert docs[0]["prevHash"] == ""
    for before, after in itertools.pairwise(docs):
        assert after["prevHash"] == before["hash"]
        assert after["version"] == before["version"] + 1
    for doc, item in zip(docs, history.events, strict=True):
        assert doc["hash"] == document_hash(doc) == item.envelope.hash
    verdict = verify((e.seq, e.raw) for e in history.events)
    assert verdict.ok, verdict.first_break
    assert history.position.hash == docs[-1]["hash"]
    return docs


class HashChainContract(abc.ABC):
    @abc.abstractmethod
    async def other_writer(self, store: Any) -> EventStore: ...

    @abc.abstractmethod
    async def put_raw(self, store: Any, subject: str, data: bytes) -> int: ...

    @abc.abstractmethod
    def envelope(
        self, aggregate_id: str, event: Any, after: Any, *, index: int = 0
    ) -> Envelope: ...

    async def test_appends_chain_each_event_to_the_one_before(self, store: EventStore) -> None:
        first, _ = await store.append("job", "job-h", [self.envelope("job-h", _dispatched(), NEW)],
                                      NEW)  # fmt: skip
        assert first[0].envelope.prev_hash == ""
        assert first[0].position.hash == first[0].envelope.hash
        pos = first[0].position
        two = [
            self.envelope("job-h", JobStarted(attempt=1), pos),
            self.envelope("job-h", JobProgressed(attempt=1, progress="a"), pos, index=1),
        ]
        stored, _ = await store.append("job", "job-h", two, pos)  # one append, two links
        assert stored[0].envelope.prev_hash == first[0].envelope.hash
        assert stored[1].envelope.prev_hash == stored[0].envelope.hash
        docs = await assert_linear_chain(store, "job", "job-h")
        assert [d["hash"] for d in docs] == [e.envelope.hash for e in [*first, *stored]]

    async def test_a_duplicate_append_returns_the_stored_hash(self, store: EventStore) -> None:
        env = self.envelope("job-hd", _dispatched(), NEW)
        first, _ = await store.append("job", "job-hd", [env], NEW)
        again, duplicate = await store.append("job", "job-hd", [env], NEW)
        assert duplicate and again[0].envelope.hash == first[0].envelope.hash

    async def test_the_pipelined_append_chains_too(self, store: EventStore) -> None:
        positions = {}
        for job in ("job-hp1", "job-hp2"):
            stored, _ = await store.append("job", job, [self.envelope(job, _dispatched(), NEW)],
                                           NEW)  # fmt: skip
            positions[job] = stored[0].position
        batch = [
            ("job", job, self.envelope(job, JobStarted(attempt=1), pos), pos)
            for job, pos in positions.items()
        ]
        results = await store.append_each(batch)
        for (job, pos), got in zip(positions.items(), results, strict=True):
            assert isinstance(got, StoredEvent) and got.envelope.prev_hash == pos.hash
            assert got.position.hash == got.envelope.hash
            await assert_linear_chain(store, "job", job)

    async def test_racing_writers_on_one_aggregate_keep_the_chain_linear(
        self, store: EventStore
    ) -> None:
        """Each writer caches its own predecessor; a stale one is refused by the expected
        sequence and the writer retries on the fresh one, so no two events share a parent."""
        first = CommandExecutor(store)
        await first.execute("job", "job-hr", DispatchJob(spec=SPEC))
        await first.execute("job", "job-hr", RecordStatus(status="running", attempt=1))
        writers = [first, *[CommandExecutor(await self.other_writer(store)) for _ in range(3)]]
        for w in writers[1:]:  # every writer's cache is warm, so they race on stale positions
            await w.current("job", "job-hr")
        await asyncio.gather(
            *[
                writers[i % len(writers)].execute(
                    "job", "job-hr", RecordStatus(status="running", attempt=1, progress=f"{i}")
                )
                for i in range(16)
            ]
        )
        assert sum(w.stats.conflicts for w in writers) > 0  # the race did happen
        docs = await assert_linear_chain(store, "job", "job-hr")
        assert len(docs) == 18
        assert len({d["prevHash"] for d in docs}) == 18

    async def test_execute_each_pipelines_chained_appends(self, store: EventStore) -> None:
        executor = CommandExecutor(store)
        jobs = [f"job-he{i}" for i in range(4)]
        for job in jobs:
            await executor.execute("job", job, DispatchJob(spec=SPEC), new=True)
        for step in range(3):
            command = RecordStatus(status="running", attempt=1, progress=f"{step}")
            outcomes = await executor.execute_each(
                [("job", job, command, None, f"cause-{job}-{step}") for job in jobs]
            )
            assert all(not isinstance(o, Exception) and o.changed for o in outcomes)
        assert executor.stats.cache_misses == 0  # every predecessor's hash came from the cache
        for job in jobs:
            assert len(await assert_linear_chain(store, "job", job)) == 4

    async def test_a_chain_starts_after_events_stored_without_hashes(
        self, store: EventStore
    ) -> None:
        old = self.envelope("job-ho", _dispatched(), NEW)  # as stored before the chain
        await self.put_raw(store, "baker.events.job.job-ho", encode_event(old))
        history = await store.load("job", "job-ho")
        assert history.events[0].envelope.hash is None and history.position.hash == ""
        await CommandExecutor(store).execute("job", "job-ho", RecordStatus(status="running"))
        history = await store.load("job", "job-ho")
        assert history.events[1].envelope.prev_hash == ""
        verdict = verify((e.seq, e.raw) for e in history.events)
        assert verdict.ok and verdict.unhashed == 1 and verdict.events == 2
