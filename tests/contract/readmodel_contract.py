"""One contract for every read-model store: SQLite and PostgreSQL subclass it.

The same events go through the same folds on each; the checkpoints move with the rows in one
transaction, a batch applied again (or by a second writer at once) is skipped, every query
the API uses answers as it does on SQLite, and rebuild + swap, verify and as-of work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.eventstore import NEW, InMemoryEventStore, Position
from adapters.readmodel import ReadModelStore, SqliteStore
from domain import events as ev
from domain.events import DomainEvent, Envelope
from projections import queries
from projections.engine import apply_batch, init_checkpoints, read_checkpoints
from projections.jobs import JobRow, fold_job
from projections.pit import jobs_as_of, seq_at
from projections.schema import PROJECTIONS
from projections.sql import ReadDb, WriteDb
from projections.usage import GROUPS, UsageFilter, usage, usage_total
from services.projector import Projector
from services.rebuild import rebuild, verify

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MODEL = ev.AgentModelCalled
SCENARIO: list[tuple[str, str, DomainEvent]] = [
    ("job", "job-1", ev.JobDispatched(job_type="command", payload={"command": "echo hi"},
                                      labels={"team": "infra"})),
    ("job", "job-2", ev.JobDispatched(job_type="http", payload={}, timeout_seconds=9)),
    ("job", "job-1", ev.JobReceived(attempt=1, worker_id="w-1")),
    ("job", "job-1", ev.JobStarted(attempt=1, worker_id="w-1", progress="go")),
    ("job", "job-3", ev.JobDispatched(job_type="agent", payload={"prompt": "disk?"},
                                      labels={"team": "infra", "tier": "b"})),
    ("job", "job-3", ev.JobReceived(attempt=1, worker_id="w-2")),
    ("job", "job-3", MODEL(attempt=1, step=1, model="claude-b", cost_usd=0.0123,
                           usage=ev.Usage(input_tokens=100, output_tokens=20))),
    ("job", "job-3", MODEL(attempt=1, step=2, model="claude-a", cost_usd=0.0004,
                           usage=ev.Usage(input_tokens=7, cache_read_tokens=3))),
    ("job", "job-1", ev.JobCompleted(worker_id="w-1", attempt=1, result={"exitCode": 0},
                                     duration_ms=600)),
    ("job", "job-2", ev.JobReceived(attempt=1, worker_id="w-2")),
    ("job", "job-2", ev.JobFailed(reason="max_deliveries", error="gave up")),
    ("job", "job-3", ev.JobCompleted(worker_id="w-2", attempt=1, result={"text": "fine"})),
    ("job", "job-9", ev.JobStarted(attempt=1)),  # never dispatched: a dead letter
    ("task", "task-1", ev.TaskLaunched(goal="g", mode="script", timeout_seconds=60)),
    ("task", "task-1", ev.TaskProgressed(message="half")),
    ("extension", "ext-B", ev.ExtensionAnnounced(name="w", version="1", mcp_url="u",
                                                 tools=[{"name": "t"}])),
    ("extension", "ext-a", ev.ExtensionAnnounced(name="v", version="2", mcp_url="v")),
    ("extension", "ext-a", ev.ExtensionWentOffline(missed_heartbeats=3)),
    ("service", "svc-1", ev.ServiceUp(service="worker", instance="w-1")),
    ("service", "svc-2", ev.ServiceUp(service="Worker", instance="w-2")),
    ("brain", "brain-1", ev.BrainStarted(role="pending", version="2")),
    ("brain", "brain-1", ev.BrainActivated(generation=4)),
    ("handoff", "h-1", ev.HandoffRequested(to_instance="b", to_version="2", generation=5)),
    ("handoff", "h-1", ev.HandoffAborted(reason="timeout")),
    ("job", "job-4", ev.JobDispatched(job_type="command", payload={"command": "ls"})),
    ("job", "job-4", ev.JobCancelRequested(reason="op")),
]  # fmt: skip


async def event_log() -> InMemoryEventStore:
    """The scenario in an event store, one second apart (same times on every run)."""
    store = InMemoryEventStore()
    after: dict[tuple[str, str], Position] = {}
    for i, (aggregate, agg_id, event) in enumerate(SCENARIO):
        at = after.get((aggregate, agg_id), NEW)
        env = Envelope(
            f"e-{i}", aggregate, agg_id, at.version + 1, T0 + timedelta(seconds=i), event
        )
        stored, _ = await store.append(aggregate, agg_id, [env], at)
        after[(aggregate, agg_id)] = stored[-1].position
    return store


async def stored_events(store: InMemoryEventStore) -> list[Any]:
    batches = store.tail_batches(1, max_batch=1000, max_wait=0, idle=1.0)
    try:
        return await anext(batches)
    finally:
        await batches.aclose()


def _prepare(rm: ReadModelStore, db: WriteDb) -> dict[str, tuple[int, int]]:
    rm.ensure_schema(db)
    init_checkpoints(db)
    return read_checkpoints(db)


async def apply_in_batches(
    rm: ReadModelStore, items: Sequence[Any], size: int = 5, start: int = 0
) -> dict[str, int]:
    """Apply `items` in batches on a writer of its own, from checkpoints all at `start`."""
    writer = await rm.open_writer()
    try:
        await writer.run(lambda db: _prepare(rm, db))
        checkpoints = dict.fromkeys(PROJECTIONS, start)
        for i in range(0, len(items), size):
            chunk, before = list(items[i : i + size]), checkpoints
            result = await writer.run(lambda db: apply_batch(db, chunk, before))  # noqa: B023
            checkpoints = result.checkpoints
        return checkpoints
    finally:
        await writer.close()


async def answers(db: ReadDb) -> dict[str, Any]:
    """What every read-model query the API and the CLI use answers."""
    first = await queries.list_jobs(db, queries.JobFilter(limit=2))
    f = UsageFilter
    return {
        "all": await queries.list_jobs(db, queries.JobFilter(limit=500)),
        "first": first,
        "second": await queries.list_jobs(db, queries.JobFilter(limit=2, cursor=first.next)),
        "completed": await queries.list_jobs(db, queries.JobFilter(status="completed")),
        "http": await queries.list_jobs(db, queries.JobFilter(type="http")),
        "infra": await queries.list_jobs(db, queries.JobFilter(labels=(("team", "infra"),))),
        "both": await queries.list_jobs(
            db, queries.JobFilter(labels=(("team", "infra"), ("tier", "b")))
        ),
        "job": await queries.get_job(db, "job-3"),
        "missing": await queries.get_job(db, "job-x"),
        "events": await queries.search_events(db, queries.EventFilter(job_id="job-1")),
        "started": await queries.search_events(db, queries.EventFilter(type="JobStarted")),
        "worker": await queries.search_events(db, queries.EventFilter(worker_id="w-2")),
        "window": await queries.search_events(
            db, queries.EventFilter(since="2026-03-01T12:00:03Z", until="2026-03-01T12:00:08Z")
        ),
        "stats": await queries.job_stats(db),
        "extensions": await queries.extensions(db),
        "services": await queries.services(db),
        "tasks": await queries.tasks(db),
        "task": await queries.task(db, "task-1"),
        "handoff": await queries.handoff_state(db),
        "checkpoints": await queries.checkpoints(db),
        "dead": await queries.dead_letters(db),
        "usage": {g: await usage(db, f(g)) for g in GROUPS},
        "usage_total": await usage_total(db, f()),
        "usage_none": await usage_total(db, f(since="2030-01-01")),
        "as_of": await jobs_as_of(db, 8),
        "seq_at": await seq_at(db, T0 + timedelta(seconds=4, milliseconds=500)),
    }


def folded_up_to(seq: int) -> dict[str, JobRow]:
    """The jobs after event `seq`, folded here without a database (the as-of oracle)."""
    rows: dict[str, JobRow] = {}
    for i, (aggregate, agg_id, event) in enumerate(SCENARIO[:seq]):
        if aggregate != "job":
            continue
        version = sum(1 for a, x, _ in SCENARIO[:i] if (a, x) == (aggregate, agg_id)) + 1
        env = Envelope(f"e-{i}", aggregate, agg_id, version, T0 + timedelta(seconds=i), event)
        try:
            rows[agg_id] = fold_job(rows.get(agg_id), env, i + 1).row
        except ValueError:
            continue
    return rows


async def run_to_the_end(projector: Projector) -> Projector:
    """Run `projector` until the whole scenario is applied, then stop it."""
    await projector.open()
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    assert await projector.wait_for(len(SCENARIO), 30)
    stop.set()
    await running
    return projector


class ReadModelContract:
    """Subclasses provide the fixture `rm`: an initialised, empty `ReadModelStore`."""

    async def test_batches_move_the_checkpoints_with_the_rows(self, rm: ReadModelStore) -> None:
        items = await stored_events(await event_log())
        checkpoints = await apply_in_batches(rm, items[:10])
        assert checkpoints == dict.fromkeys(PROJECTIONS, 10)
        reader = rm.reader()
        try:
            db = await reader.db()
            assert await reader.applied() == 10
            assert await queries.checkpoints(db) == checkpoints
            jobs = (await queries.list_jobs(db, queries.JobFilter())).jobs
            assert {j["id"]: j["status"] for j in jobs} == {
                "job-1": "completed", "job-2": "received", "job-3": "received",
            }  # fmt: skip
        finally:
            await reader.close()

    async def test_events_applied_again_are_skipped(self, rm: ReadModelStore) -> None:
        items = await stored_events(await event_log())
        await apply_in_batches(rm, items)
        async with rm.snapshot() as db:
            once = await answers(db)
        # A writer that believes nothing was applied yet: the database's checkpoints win.
        assert await apply_in_batches(rm, items, size=3) == dict.fromkeys(PROJECTIONS, len(items))
        async with rm.snapshot() as db:
            assert await answers(db) == once

    async def test_two_writers_at_once_apply_every_event_once(
        self, rm: ReadModelStore, tmp_path: Path
    ) -> None:
        items = await stored_events(await event_log())
        await asyncio.gather(apply_in_batches(rm, items, 2), apply_in_batches(rm, items, 3))
        reference = SqliteStore(tmp_path / "reference.db")
        await reference.initialise()
        await apply_in_batches(reference, items)
        async with rm.snapshot() as db, reference.snapshot() as ref:
            assert await answers(db) == await answers(ref)

    async def test_every_query_answers_as_on_sqlite(
        self, rm: ReadModelStore, tmp_path: Path
    ) -> None:
        items = await stored_events(await event_log())
        await apply_in_batches(rm, items, size=4)
        reference = SqliteStore(tmp_path / "reference.db")
        await reference.initialise()
        await apply_in_batches(reference, items, size=6)
        async with rm.snapshot() as db, reference.snapshot() as ref:
            mine, theirs = await answers(db), await answers(ref)
        assert mine == theirs
        assert [e["id"] for e in mine["extensions"]] == ["ext-B", "ext-a"]  # bytewise order
        assert mine["usage_total"]["costUsd"] == pytest.approx(0.0127)
        assert mine["dead"][0]["seq"] == 13

    async def test_the_projector_folds_the_log_through_the_store(self, rm: ReadModelStore) -> None:
        await run_to_the_end(Projector(await event_log(), rm))
        async with rm.snapshot() as db:
            assert (await queries.checkpoints(db)) == dict.fromkeys(PROJECTIONS, len(SCENARIO))

    async def test_rebuild_swaps_in_a_generation_and_readers_follow(
        self, rm: ReadModelStore
    ) -> None:
        log = await event_log()
        items = await stored_events(log)
        await apply_in_batches(rm, items[:12])
        first = await rm.current()
        reader = rm.reader()
        try:
            before = await answers(await reader.db())
            result = await rebuild(log, rm)
            assert result.previous == first and result.generation == await rm.current() != first
            assert result.last_seq == len(SCENARIO) and result.removed == []
            after = await answers(await reader.db())
            assert after["checkpoints"] == dict.fromkeys(PROJECTIONS, len(SCENARIO))
            assert after != before
            again = await rebuild(log, rm)
            assert again.removed == [first]  # the one before the previous is removed
            assert await answers(await reader.db()) == after
        finally:
            await reader.close()

    async def test_rebuild_of_one_projection_keeps_the_others(self, rm: ReadModelStore) -> None:
        log = await event_log()
        items = await stored_events(log)
        await apply_in_batches(rm, items)
        async with rm.snapshot() as db:
            whole = await answers(db)
        await rebuild(log, rm, projection="jobs")
        async with rm.snapshot() as db:
            assert await answers(db) == whole

    async def test_verify_matches_and_then_finds_drift(self, rm: ReadModelStore) -> None:
        log = await event_log()
        await apply_in_batches(rm, await stored_events(log))
        report = await verify(log, rm)
        assert report.ok and report.checkpoint == len(SCENARIO)
        assert set(report.tables.values()) == {True}
        writer = await rm.open_writer()
        try:
            await writer.run(
                lambda db: db.execute("UPDATE jobs SET status = 'failed' WHERE id = ?", ["job-1"])
            )
        finally:
            await writer.close()
        drift = await verify(log, rm)
        assert not drift.ok and [d.table for d in drift.diffs] == ["jobs"]
        assert drift.diffs[0].different[0]["columns"]["status"] == {
            "live": "failed", "shadow": "completed",
        }  # fmt: skip

    async def test_as_of_folds_the_jobs_back(self, rm: ReadModelStore) -> None:
        await apply_in_batches(rm, await stored_events(await event_log()))
        async with rm.snapshot() as db:
            for seq in (1, 4, 8, 11, len(SCENARIO)):
                assert await jobs_as_of(db, seq) == folded_up_to(seq), seq
            assert await seq_at(db, T0 + timedelta(seconds=6, milliseconds=1)) == 7
            assert await seq_at(db, T0 - timedelta(seconds=1)) == 0
