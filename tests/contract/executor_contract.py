"""The command executor's contract, run over every event store (in-memory and JetStream).

Deciding commands, appending with conflict retries, the state cache, pipelined appends, event
ids derived from causes, and the fence."""

from __future__ import annotations

import abc
import asyncio
from typing import Any

import pytest

from adapters.eventstore import NEW, ConcurrencyConflict, EventStore, Position
from domain.commands import DispatchJob, LaunchTask, RecordStatus, RequestCancel, StartBrain
from domain.events import JobProgressed, JobStarted, TransitionRejected
from domain.ids import InvalidId
from domain.specs import parse_job_spec
from services.executor import CommandExecutor, Outcome
from tests.contract.event_store_contract import dispatched

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


class Refused(Exception):
    pass


class FakeFence:
    """A leadership stand-in: refuses jobs and tasks while `leading` is False, and stamps
    `generation` on everything it lets through."""

    def __init__(self, generation: int | None = 7) -> None:
        self.leading = True
        self.generation = generation
        self.checked: list[str] = []

    def check(self, aggregate: str) -> int | None:
        self.checked.append(aggregate)
        if aggregate in ("job", "task") and not self.leading:
            raise Refused(f"may not append {aggregate} events")
        return self.generation


class ExecutorContract(abc.ABC):
    """Subclasses provide the `store` fixture and `other_writer(store)` (another process's
    store on the same log)."""

    @abc.abstractmethod
    async def other_writer(self, store: Any) -> EventStore: ...

    @pytest.fixture
    def executor(self, store: EventStore) -> CommandExecutor:
        return CommandExecutor(store)

    async def other_executor(self, store: EventStore) -> CommandExecutor:
        return CommandExecutor(await self.other_writer(store))

    async def test_append_builds_envelopes_from_version_one(
        self, executor: CommandExecutor
    ) -> None:
        stored = await executor.append("job", "job-1", [dispatched()], NEW, trace_id="t-1")
        assert [s.envelope.version for s in stored] == [1]
        assert stored[0].subject == "baker.events.job.job-1"
        history = await executor.store.load("job", "job-1")
        assert history.position == stored[0].position
        assert history.position == Position(stored[0].seq, 1, stored[0].envelope.hash or "")
        assert history.state.status == "dispatched"
        assert history.events[0].envelope.trace_id == "t-1"
        assert history.events[0].envelope.data == dispatched()
        assert history.events[0].envelope.generation is None  # no fence, no generation

    async def test_versions_are_contiguous_across_appends(self, executor: CommandExecutor) -> None:
        pos = NEW
        for batch in (
            [dispatched()],
            [JobStarted(attempt=1)],
            [JobProgressed(attempt=1, progress="a"), JobProgressed(attempt=1, progress="b")],
        ):
            stored = await executor.append("job", "job-v", batch, pos)
            pos = stored[-1].position
        history = await executor.store.load("job", "job-v")
        assert [e.envelope.version for e in history.events] == [1, 2, 3, 4]
        assert history.state.progress == "b"
        assert len({e.envelope.event_id for e in history.events}) == 4

    async def test_stale_expected_position_conflicts_and_stores_nothing(
        self, executor: CommandExecutor
    ) -> None:
        await executor.append("job", "job-c", [dispatched()], NEW)
        with pytest.raises(ConcurrencyConflict):
            await executor.append("job", "job-c", [dispatched()], NEW)
        assert executor.stats.conflicts == 1
        assert len((await executor.store.load("job", "job-c")).events) == 1

    async def test_racing_executes_all_land_once_with_contiguous_versions(
        self, executor: CommandExecutor, store: EventStore
    ) -> None:
        await executor.execute("job", "job-x", DispatchJob(spec=SPEC))
        await executor.execute("job", "job-x", RecordStatus(status="running", attempt=1))
        writers = [executor, *[await self.other_executor(store) for _ in range(3)]]
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
        self, executor: CommandExecutor
    ) -> None:
        await executor.execute("job", "job-e", DispatchJob(spec=SPEC))
        done = await executor.execute("job", "job-e", RecordStatus(status="running"))
        assert done.changed and done.state.status == "running"
        dup = await executor.execute("job", "job-e", RecordStatus(status="running"))
        assert dup.appended == [] and dup.rejected is None
        await executor.execute("job", "job-e", RecordStatus(status="completed", result="ok"))
        late = await executor.execute("job", "job-e", RecordStatus(status="running"))
        assert late.rejected is not None and "terminal" in late.rejected.reason
        assert isinstance(late.appended[0].envelope.data, TransitionRejected)
        refused = await executor.execute("job", "job-e", RequestCancel())
        assert refused.rejected is not None
        history = await executor.store.load("job", "job-e")
        assert history.state.status == "completed"
        assert [e.envelope.type for e in history.events] == [
            "JobDispatched", "JobStarted", "JobCompleted",
            "TransitionRejected", "TransitionRejected",
        ]  # fmt: skip

    async def test_execute_on_a_missing_aggregate_rejects_without_creating_it(
        self, executor: CommandExecutor
    ) -> None:
        outcome = await executor.execute("job", "job-none", RecordStatus(status="running"))
        assert outcome.rejected is not None and outcome.appended == []
        assert not (await executor.store.load("job", "job-none")).exists

    async def test_execute_sees_writes_of_another_writer(
        self, executor: CommandExecutor, store: EventStore
    ) -> None:
        other = await self.other_executor(store)
        await executor.execute("job", "job-o", DispatchJob(spec=SPEC))
        await other.execute("job", "job-o", RecordStatus(status="running"))
        # `executor` still caches "dispatched": its append conflicts, it reloads, re-decides.
        outcome = await executor.execute("job", "job-o", RecordStatus(status="completed"))
        assert outcome.state.status == "completed" and outcome.attempts == 2

    async def test_execute_each_decides_and_appends_as_execute_would(
        self, executor: CommandExecutor
    ) -> None:
        for job in ("job-m1", "job-m2", "job-m3"):
            await executor.execute("job", job, DispatchJob(spec=SPEC))
        executor.forget("job", "job-m3")  # not cached: goes through `execute`
        items = [
            ("job", "job-m1", RecordStatus(status="running", attempt=1), "ab" * 16, "c-1"),
            ("job", "job-m2", RecordStatus(status="received", attempt=1), None, "c-2"),
            ("job", "job-m3", RecordStatus(status="running", attempt=1), None, "c-3"),
            ("job", "job-none", RecordStatus(status="running"), None, "c-4"),
        ]
        outcomes = await executor.execute_each(items)
        assert all(isinstance(o, Outcome) for o in outcomes)
        m1, m2, m3, none = (o for o in outcomes if isinstance(o, Outcome))
        assert (m1.state.status, m2.state.status, m3.state.status) == (
            "running",
            "received",
            "running",
        )
        store = executor.store
        assert none.rejected is not None and not (await store.load("job", "job-none")).exists
        history = await store.load("job", "job-m1")
        assert [e.envelope.type for e in history.events] == ["JobDispatched", "JobStarted"]
        assert [(e.seq, e.envelope.trace_id) for e in m1.appended] == [
            (history.events[-1].seq, "ab" * 16)
        ]
        assert m1.position == history.position
        # The same causes again (redelivered messages) store nothing new.
        again = await executor.execute_each(items[:3])
        assert not any(isinstance(o, Outcome) and o.changed for o in again)
        for job in ("job-m1", "job-m2", "job-m3"):
            assert len((await store.load("job", job)).events) == 2

    async def test_execute_each_takes_a_conflict_through_execute(
        self, executor: CommandExecutor, store: EventStore
    ) -> None:
        other = await self.other_executor(store)
        for job in ("job-c1", "job-c2"):
            await executor.execute("job", job, DispatchJob(spec=SPEC))
        await other.execute("job", "job-c1", RecordStatus(status="running", attempt=1))
        c1, c2 = await executor.execute_each([
            ("job", "job-c1", RecordStatus(status="completed", result="ok"), None, "k-1"),
            ("job", "job-c2", RecordStatus(status="running", attempt=1), None, "k-2"),
        ])  # fmt: skip
        assert isinstance(c1, Outcome) and isinstance(c2, Outcome)
        assert c1.state.status == "completed" and c2.state.status == "running"
        assert executor.stats.conflicts >= 1
        history = await store.load("job", "job-c1")
        assert [e.envelope.type for e in history.events] == [
            "JobDispatched", "JobStarted", "JobCompleted",
        ]  # fmt: skip

    async def test_execute_each_appends_cached_aggregates_itself(
        self, executor: CommandExecutor
    ) -> None:
        """The point of it: no `execute` (lock, coroutine chain, one round trip) per command."""
        for job in ("job-p1", "job-p2"):
            await executor.execute("job", job, DispatchJob(spec=SPEC))

        async def no_execute(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("went through execute")

        executor.execute = no_execute  # type: ignore[method-assign]
        outcomes = await executor.execute_each([
            ("job", "job-p1", RecordStatus(status="running", attempt=1), None, "p-1"),
            ("job", "job-p2", RecordStatus(status="received", attempt=1), None, "p-2"),
        ])  # fmt: skip
        assert [o.state.status for o in outcomes if isinstance(o, Outcome)] == [
            "running", "received",
        ]  # fmt: skip
        del executor.execute  # the class's own again
        assert (await executor.store.load("job", "job-p1")).state.status == "running"

    async def test_execute_each_takes_one_command_per_aggregate(
        self, executor: CommandExecutor
    ) -> None:
        item = ("job", "job-twice", RecordStatus(status="running"), None, "k")
        with pytest.raises(ValueError, match="one command per aggregate"):
            await executor.execute_each([item, item])

    async def test_same_cause_appended_twice_is_stored_once(
        self, executor: CommandExecutor
    ) -> None:
        await executor.append("job", "job-d", [dispatched()], NEW, causation_id="msg-1")
        again = await executor.append("job", "job-d", [dispatched()], NEW, causation_id="msg-1")
        history = await executor.store.load("job", "job-d")
        assert len(history.events) == 1
        assert again[0].seq == history.events[0].seq
        assert executor.stats.duplicates == 1

    async def test_ids_that_are_not_subject_tokens_are_refused(
        self, executor: CommandExecutor
    ) -> None:
        for bad in ("a.b", "*", ">", "has space", ""):
            with pytest.raises(InvalidId):
                await executor.append("job", bad, [dispatched()], NEW)
        with pytest.raises(InvalidId):
            await executor.append("jobs", "job-1", [dispatched()], NEW)

    async def test_the_fence_refuses_before_anything_is_stored_and_stamps_what_it_allows(
        self, store: EventStore
    ) -> None:
        fence = FakeFence(generation=7)
        executor = CommandExecutor(store, fence=fence)
        outcome = await executor.execute("job", "job-f", DispatchJob(spec=SPEC), new=True)
        assert [e.envelope.generation for e in outcome.appended] == [7]
        fence.leading = False
        head = await store.head_seq()
        with pytest.raises(Refused):
            await executor.execute("job", "job-f", RequestCancel(reason="stale"))
        with pytest.raises(Refused):
            await executor.append("job", "job-g", [dispatched()], NEW)
        launch = LaunchTask(goal="echo x", mode="script", timeout_seconds=5)
        with pytest.raises(Refused):
            await executor.execute("task", "task-f", launch, new=True)
        # Pipelined commands are fenced too: refused ones come back as the fence's error.
        [refused] = await executor.execute_each(
            [("job", "job-f", RecordStatus(status="running", attempt=1), None, "f-1")]
        )
        assert isinstance(refused, Refused)
        assert await store.head_seq() == head  # nothing reached the log
        # What the fence allows (a Brain's own role changes) is stamped with its generation.
        fence.generation = 8
        started = await executor.execute("brain", "blue", StartBrain(role="active", version="1"))
        assert [e.envelope.generation for e in started.appended] == [8]
        assert await store.head_seq() == head + 1
        assert set(fence.checked) == {"job", "task", "brain"}
