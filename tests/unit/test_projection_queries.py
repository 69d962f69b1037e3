"""Read-model queries against known rows in a real SQLite file: latency percentiles
(nearest rank) and the job-event search by job, type, worker and time."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import aiosqlite
import pytest

from adapters.eventstore import StoredEvent
from adapters.sqlite import connect_writer, ensure_schema, open_db
from domain import events as ev
from domain.events import DomainEvent, Envelope, encode_event
from projections import queries
from projections.engine import apply_batch, init_checkpoints
from projections.schema import PROJECTIONS

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """A read model made as the projector makes it, and a reader on it."""
    with contextlib.closing(connect_writer(tmp_path / "rm.db")) as writer:
        ensure_schema(writer)
        init_checkpoints(writer)
    conn = await open_db(tmp_path / "rm.db")
    yield conn
    await conn.close()


def stored(seq: int, job: str, version: int, event: DomainEvent, seconds: float) -> StoredEvent:
    env = Envelope(f"e-{seq}", "job", job, version, T0 + timedelta(seconds=seconds), event)
    return StoredEvent(seq, f"baker.events.job.{job}", env, encode_event(env))


async def apply(db: aiosqlite.Connection, items: list[StoredEvent]) -> None:
    """Apply `items` to the file `db` reads, as the projector's writer does."""
    async with db.execute("SELECT file FROM pragma_database_list WHERE name = 'main'") as cur:
        row = await cur.fetchone()
    assert row is not None
    with contextlib.closing(connect_writer(Path(row[0]))) as writer:
        apply_batch(writer, items, dict.fromkeys(PROJECTIONS, 0))


async def latencies(db: aiosqlite.Connection, phase: str, values: list[int]) -> None:
    shuffled = random.Random(7).sample(values, len(values))
    await db.executemany(
        "INSERT INTO job_latency (job_id, phase, type, ms) VALUES (?, ?, 'command', ?)",
        [(f"job-{i}", phase, ms) for i, ms in enumerate(shuffled)],
    )


@pytest.mark.parametrize(
    ("percent", "n", "rank"),
    [(50, 1, 1), (99, 1, 1), (50, 2, 1), (50, 3, 2), (95, 20, 19), (99, 20, 20), (95, 100, 95),
     (99, 100, 99), (50, 100, 50), (99, 1000, 990), (1, 1000, 10), (100, 7, 7)],
)  # fmt: skip
def test_nearest_rank(percent: int, n: int, rank: int) -> None:
    assert queries.nearest_rank(percent, n) == rank


async def test_percentiles_are_nearest_rank_of_known_values(db: aiosqlite.Connection) -> None:
    await latencies(db, "dispatched_to_received", list(range(1, 101)))  # 1..100 ms
    await latencies(db, "received_to_running", [10 * i for i in range(1, 11)])  # 10..100
    await latencies(db, "running_to_terminal", [7])
    stats = (await queries.job_stats(db))["latencyMs"]["command"]
    assert stats["dispatched_to_received"] == {"count": 100, "p50": 50, "p95": 95, "p99": 99}
    assert stats["received_to_running"] == {"count": 10, "p50": 50, "p95": 100, "p99": 100}
    assert stats["running_to_terminal"] == {"count": 1, "p50": 7, "p95": 7, "p99": 7}


async def test_percentiles_of_phases_measured_by_the_fold(db: aiosqlite.Connection) -> None:
    """Four jobs received 100, 200, 300 and 400 ms after dispatch; counts per status too."""
    items: list[StoredEvent] = []
    for i, delay in enumerate((0.3, 0.1, 0.4, 0.2)):
        job = f"job-{i}"
        items.append(stored(len(items) + 1, job, 1, _dispatched(), i))
        items.append(stored(len(items) + 1, job, 2, ev.JobReceived(attempt=1), i + delay))
    await apply(db, items)
    stats = await queries.job_stats(db)
    assert stats["counts"] == {"command": {"received": 4}}
    assert stats["latencyMs"]["command"] == {
        "dispatched_to_received": {"count": 4, "p50": 200, "p95": 400, "p99": 400}
    }


def _dispatched() -> ev.JobDispatched:
    return ev.JobDispatched(job_type="command", payload={"command": "echo hi"})


@pytest.fixture
async def history(db: aiosqlite.Connection) -> aiosqlite.Connection:
    """Two jobs, interleaved, with a rejected transition; event `seq` happens at T0 + seq s."""
    rejected = ev.TransitionRejected(from_state="running", attempted="received", reason="late")
    steps: list[tuple[str, int, DomainEvent]] = [
        ("job-1", 1, _dispatched()),
        ("job-2", 1, _dispatched()),
        ("job-1", 2, ev.JobReceived(attempt=1, worker_id="w-1")),
        ("job-2", 2, ev.JobReceived(attempt=1, worker_id="w-2")),
        ("job-1", 3, ev.JobStarted(attempt=1, worker_id="w-1")),
        ("job-1", 4, rejected),
        ("job-1", 5, ev.JobCompleted(attempt=1, worker_id="w-1", result={"ok": True})),
    ]
    await apply(db, [stored(s, job, v, e, s) for s, (job, v, e) in enumerate(steps, 1)])
    return db


async def seqs(db: aiosqlite.Connection, **filters: object) -> list[int]:
    found = await queries.search_events(db, queries.EventFilter(**filters))  # type: ignore[arg-type]
    return [doc["seq"] for doc in found]


async def test_search_events_by_job_type_and_worker(history: aiosqlite.Connection) -> None:
    assert await seqs(history, job_id="job-1") == [1, 3, 5, 6, 7]
    assert await seqs(history, job_id="job-2") == [2, 4]
    assert await seqs(history, type="JobReceived") == [3, 4]
    assert await seqs(history, type="TransitionRejected") == [6]
    assert await seqs(history, worker_id="w-1") == [3, 5, 7]
    assert await seqs(history, worker_id="w-2", type="JobReceived") == [4]
    assert await seqs(history, job_id="job-2", worker_id="w-1") == []
    assert await seqs(history, job_id="job-1", limit=2) == [1, 3]
    doc = (await queries.search_events(history, queries.EventFilter(type="TransitionRejected")))[0]
    assert doc["aggregateId"] == "job-1" and doc["data"]["reason"] == "late"


async def test_search_events_by_time_range_in_any_iso_form(history: aiosqlite.Connection) -> None:
    at = {s: T0 + timedelta(seconds=s) for s in range(1, 8)}
    assert await seqs(history, since=at[3].isoformat(), until=at[5].isoformat()) == [3, 4, 5]
    # The same moments as `Z`, as another offset, and without an offset (taken as UTC).
    z = at[3].strftime("%Y-%m-%dT%H:%M:%SZ")
    paris = at[5].astimezone(timezone(timedelta(hours=1))).isoformat()
    naive = at[6].replace(tzinfo=None).isoformat()
    assert await seqs(history, since=z, until=paris) == [3, 4, 5]
    assert await seqs(history, since=naive) == [6, 7]
    assert await seqs(history, until=at[1].isoformat()) == [1]
    half = (at[2] + timedelta(milliseconds=500)).isoformat()
    assert await seqs(history, job_id="job-1", since=half) == [3, 5, 6, 7]
    assert await seqs(history, since=at[7].isoformat(), until=at[1].isoformat()) == []


async def test_search_events_refuses_a_time_that_is_not_one(history: aiosqlite.Connection) -> None:
    with pytest.raises(ValueError, match="since: 'yesterday' is not an ISO-8601 time"):
        await queries.search_events(history, queries.EventFilter(since="yesterday"))
    with pytest.raises(ValueError, match="until"):
        await queries.search_events(history, queries.EventFilter(until="12:00 tomorrow"))
