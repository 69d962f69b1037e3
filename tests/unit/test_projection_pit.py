"""Point in time (`jobs_as_of`, `seq_at`) against a real SQLite file: known answers for a
mid-range sequence and a mid-range time, and, for random logs, the same rows at every
sequence as folding all of `job_events` from the start."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.eventstore import StoredEvent
from adapters.sqlite import connect_writer, ensure_schema, open_db
from domain import events as ev
from domain.events import DomainEvent, Envelope, EventDecodeError, decode_event, encode_event
from projections.engine import apply_batch, init_checkpoints
from projections.jobs import FoldError, JobRow, fold_job
from projections.pit import jobs_as_of, seq_at
from projections.schema import PROJECTIONS

T0 = datetime(2026, 5, 4, 9, 0, 0, tzinfo=UTC)


def at(seq: int) -> datetime:
    return T0 + timedelta(seconds=seq)


def item(seq: int, job: str, version: int, event: DomainEvent) -> StoredEvent:
    env = Envelope(f"e-{seq}", "job", job, version, at(seq), event)
    return StoredEvent(seq, f"baker.events.job.{job}", env, encode_event(env))


async def fresh(path: Path) -> aiosqlite.Connection:
    """A read model at `path` (made as the projector makes it), and a reader on it."""
    with contextlib.closing(connect_writer(path)) as writer:
        ensure_schema(writer)
        init_checkpoints(writer)
    return await open_db(path)


def project(path: Path, items: list[StoredEvent], batch: int = 3) -> None:
    """Apply `items` in batches of `batch`, as the projector's writer does."""
    checkpoints = dict.fromkeys(PROJECTIONS, 0)
    with contextlib.closing(connect_writer(path)) as writer:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            checkpoints = apply_batch(writer, chunk, checkpoints).checkpoints


def dispatched() -> ev.JobDispatched:
    return ev.JobDispatched(job_type="command", payload={"command": "echo hi"})


def statuses(rows: dict[str, JobRow]) -> dict[str, str]:
    return {job: row["status"] for job, row in rows.items()}


async def test_a_mid_range_sequence_and_a_mid_range_time(tmp_path: Path) -> None:
    db = await fresh(tmp_path / "rm.db")
    project(tmp_path / "rm.db", [
        item(1, "job-a", 1, dispatched()),
        item(2, "job-b", 1, dispatched()),
        item(3, "job-a", 2, ev.JobStarted(attempt=1, worker_id="w-1")),
        item(4, "job-a", 3, ev.JobCompleted(attempt=1, result={"n": 1})),
        item(5, "job-b", 2, ev.JobStarted(attempt=1, worker_id="w-2")),
        item(6, "job-c", 1, dispatched()),
    ])  # fmt: skip
    assert statuses(await jobs_as_of(db, 3)) == {"job-a": "running", "job-b": "dispatched"}
    mid = at(4) + timedelta(milliseconds=500)  # between events 4 and 5
    assert await seq_at(db, mid) == 4
    assert await seq_at(db, mid.astimezone(UTC).replace(tzinfo=None)) == 4  # naive is UTC
    then = await jobs_as_of(db, await seq_at(db, mid))
    assert statuses(then) == {"job-a": "completed", "job-b": "dispatched"}
    assert then["job-a"]["result"] == '{"n":1}' and then["job-a"]["last_seq"] == 4
    assert statuses(await jobs_as_of(db, 6)) == {
        "job-a": "completed", "job-b": "running", "job-c": "dispatched",
    }  # fmt: skip
    assert await seq_at(db, at(1) - timedelta(seconds=1)) == 0
    assert await jobs_as_of(db, 0) == {}
    await db.close()


async def naive_as_of(db: aiosqlite.Connection, seq: int) -> dict[str, JobRow]:
    """The reference: fold every job event up to `seq`, in order."""
    rows: dict[str, JobRow] = {}
    async with db.execute(
        "SELECT seq, document FROM job_events WHERE seq <= ? ORDER BY seq", (seq,)
    ) as cursor:
        async for event_seq, document in cursor:
            try:
                env = decode_event(document)
                rows[env.aggregate_id] = fold_job(rows.get(env.aggregate_id), env, event_seq).row
            except (EventDecodeError, FoldError):
                continue
    return rows


steps = st.sampled_from(
    [
        ev.JobReceived(attempt=1, worker_id="w-1"),
        ev.JobStarted(attempt=1, worker_id="w-1"),
        ev.JobProgressed(attempt=1, progress="half"),
        ev.JobCompleted(attempt=1, result={"ok": True}),
        ev.JobFailed(reason="error", error="boom"),
        ev.JobCancelRequested(reason="op"),
        ev.JobCancelled(),
        ev.TransitionRejected(from_state="completed", attempted="running", reason="terminal"),
        dispatched(),  # a second dispatch: dead-lettered by the live fold
    ]
)
logs = st.lists(
    st.tuples(st.sampled_from(["job-1", "job-2", "job-3", "job-4", "stray"]), steps),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=logs, batch=st.integers(1, 7))
async def test_as_of_every_sequence_equals_folding_the_whole_log(
    log: list[tuple[str, DomainEvent]], batch: int
) -> None:
    versions: dict[str, int] = {}
    items: list[StoredEvent] = []
    for seq, (job, step) in enumerate(log, 1):
        first = job not in versions and job != "stray"
        versions[job] = versions.get(job, 0) + 1
        items.append(item(seq, job, versions[job], dispatched() if first else step))
    with tempfile.TemporaryDirectory() as tmp:
        db = await fresh(Path(tmp) / "rm.db")
        project(Path(tmp) / "rm.db", items, batch)
        for seq in range(len(items) + 1):
            assert await jobs_as_of(db, seq) == await naive_as_of(db, seq), f"as of {seq}"
        await db.close()
