"""The projector on a real nats-server: kills, restarts, poison, rebuild, verify, as-of."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from adapters.sqlite import connected, current_target, open_db
from domain.commands import DispatchJob, RecordStatus
from domain.events import Envelope, JobStarted, encode_event
from domain.specs import parse_job_spec
from projections import queries
from services.executor import CommandExecutor
from services.projector import Projector
from services.rebuild import rebuild, verify
from tests.e2e.procs import BakerProcess
from tests.polling import until_sync
from tests.support.read_models import sqlite_checkpoint

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


@pytest.fixture
async def store(provisioned: Client) -> AsyncIterator[JetStreamEventStore]:
    s = JetStreamEventStore(provisioned)
    yield s
    await s.close()


async def run_jobs(
    store: JetStreamEventStore, prefix: str, count: int, done: str = "completed"
) -> int:
    """`count` jobs through their whole lifecycle, concurrently; returns the last seq."""

    executor = CommandExecutor(store)

    async def one(i: int) -> None:
        job = f"{prefix}-{i}"
        await executor.execute("job", job, DispatchJob(spec=SPEC), new=True)
        received = RecordStatus(status="received", attempt=1, worker_id="w")
        await executor.execute("job", job, received)
        await executor.execute("job", job, RecordStatus(status="running", attempt=1))
        await executor.execute("job", job, RecordStatus(status=done, result={"i": i}))  # type: ignore[arg-type]

    for start in range(0, count, 200):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 200))))
    return await store.head_seq()


def env_for(server: NatsServerProcess, db: Path) -> dict[str, str]:
    return {"BAKER_NATS_URL": server.url, "BAKER_DB": str(db), "BAKER_LOG_LEVEL": "WARNING"}


async def test_a_killed_projector_resumes_exactly_and_verify_passes(
    nats_server: NatsServerProcess, store: JetStreamEventStore, tmp_path: Path
) -> None:
    db = tmp_path / "readmodel.db"
    head = await run_jobs(store, "job-k", 1500)
    first = BakerProcess("projector", env=env_for(nats_server, db))
    until_sync(
        lambda: sqlite_checkpoint(db) > 0, "the projector process applied events", timeout=60
    )
    first.stop(signal.SIGKILL)  # mid-stream, no chance to finish anything
    assert sqlite_checkpoint(db) < head
    second = BakerProcess("projector", env=env_for(nats_server, db))
    until_sync(lambda: sqlite_checkpoint(db) == head, "the projector caught up", timeout=60)
    assert second.stop(signal.SIGTERM) == 0
    check = BakerProcess("verify", env=env_for(nats_server, db))
    check.wait_for("read model matches the event log")
    assert check.wait() == 0
    async with connected(db, readonly=True) as conn:
        page = await queries.list_jobs(conn, queries.JobFilter(limit=500))
        stats = await queries.job_stats(conn)
    assert stats["counts"]["command"] == {"completed": 1500}
    assert len(page.jobs) == 500 and page.next is not None


async def test_verify_reports_drift_and_exits_1(
    nats_server: NatsServerProcess, store: JetStreamEventStore, tmp_path: Path
) -> None:
    db = tmp_path / "readmodel.db"
    await run_jobs(store, "job-d", 5)
    projector = Projector(store, db)
    await projector.open()
    await projector.apply([i async for i in store.read_all(1, include_bad=True)])
    await projector.close()
    with sqlite3.connect(current_target(db)) as conn:
        conn.execute("UPDATE jobs SET status = 'failed' WHERE id = 'job-d-3'")
    check = BakerProcess("verify", "--json", env=env_for(nats_server, db))
    line = check.wait_for('"ok"')
    assert check.wait() == 1
    doc = json.loads(line)
    drift = next(d for d in doc["diffs"] if d["table"] == "jobs")
    assert drift["different"][0]["columns"]["status"] == {"live": "failed", "shadow": "completed"}


async def test_poison_events_go_to_dead_letters_and_the_projector_carries_on(
    nats_server: NatsServerProcess, raw_nc: NATS, store: JetStreamEventStore, tmp_path: Path
) -> None:
    js = raw_nc.jetstream()  # stored behind the event store's back
    await run_jobs(store, "job-p", 2)
    stray = Envelope(
        "e-x",
        "job",
        "job-stray",
        1,
        __import__("datetime").datetime.now(__import__("datetime").UTC),
        JobStarted(attempt=1),
    )
    await js.publish("baker.events.job.job-stray", encode_event(stray))
    await js.publish("baker.events.job.job-p-0", b"{definitely not an event")
    head = await run_jobs(store, "job-q", 2)
    projector = Projector(store, tmp_path / "rm.db")
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    assert await projector.wait_for(head, 30)
    stop.set()
    await task
    async with connected(tmp_path / "rm.db", readonly=True) as conn:
        dead = await queries.dead_letters(conn)
        jobs = await queries.list_jobs(conn, queries.JobFilter())
    assert sorted(d["error"].split(":")[0] for d in dead) == [
        "FoldError",
        "event is not valid JSON",
    ]
    assert {j["id"] for j in jobs.jobs} == {"job-p-0", "job-p-1", "job-q-0", "job-q-1"}
    assert projector.dead_letters == 2


async def test_read_your_writes(store: JetStreamEventStore, tmp_path: Path) -> None:
    projector = Projector(store, tmp_path / "rm.db")
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    outcome = await CommandExecutor(store).execute("job", "job-ryw", DispatchJob(spec=SPEC))
    assert await projector.wait_for(outcome.position.seq, 10)
    async with connected(tmp_path / "rm.db", readonly=True) as reader:
        row = await queries.get_job(reader, "job-ryw")
    stop.set()
    await task
    assert row is not None and row["status"] == "dispatched"


async def test_rebuild_swaps_while_readers_keep_reading_and_the_projector_follows(
    store: JetStreamEventStore, tmp_path: Path
) -> None:
    db = tmp_path / "readmodel.db"
    await run_jobs(store, "job-r", 50)
    projector = Projector(store, db)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    assert await projector.wait_for(await store.head_seq(), 30)
    old_generation = current_target(db)
    reader = await open_db(db, readonly=True)
    before = await queries.list_jobs(reader, queries.JobFilter(limit=500))
    result = await rebuild(store, db)
    assert current_target(db).name == result.generation != old_generation.name
    after = await queries.list_jobs(reader, queries.JobFilter(limit=500))  # still reading
    assert after == before
    await reader.close()
    head = await run_jobs(store, "job-r2", 5)
    assert await projector.wait_for(head, 30)  # it moved to the new generation and went on
    stop.set()
    await task
    assert (await verify(store, db)).ok
    async with connected(db, readonly=True) as conn:
        assert len((await queries.list_jobs(conn, queries.JobFilter(limit=500))).jobs) == 55


async def test_a_changed_projection_version_is_rebuilt_on_start(
    store: JetStreamEventStore, tmp_path: Path
) -> None:
    db = tmp_path / "readmodel.db"
    head = await run_jobs(store, "job-v", 10)
    projector = Projector(store, db)
    await projector.open()
    await projector.apply([i async for i in store.read_all(1, include_bad=True)])
    await projector.close()
    first = current_target(db)
    with sqlite3.connect(first) as conn:  # as if written by an older fold
        conn.execute("UPDATE checkpoints SET version = 0 WHERE projection = 'jobs'")
        conn.execute("DELETE FROM jobs")
    restarted = Projector(store, db)
    await restarted.open()
    assert current_target(db) != first
    assert restarted.applied == head
    await restarted.close()
    async with connected(db, readonly=True) as reader:
        page = await queries.list_jobs(reader, queries.JobFilter(limit=100))
    assert len(page.jobs) == 10


async def test_jobs_as_of_a_sequence_or_a_time(
    nats_server: NatsServerProcess, store: JetStreamEventStore, tmp_path: Path
) -> None:
    db = tmp_path / "readmodel.db"
    executor = CommandExecutor(store)
    await executor.execute("job", "job-t", DispatchJob(spec=SPEC))
    running = await executor.execute("job", "job-t", RecordStatus(status="running"))
    await executor.execute("job", "job-t", RecordStatus(status="completed"))
    projector = Projector(store, db)
    await projector.open()
    await projector.apply([i async for i in store.read_all(1, include_bad=True)])
    await projector.close()
    env = env_for(nats_server, db)
    then = BakerProcess("jobs", "--as-of", str(running.position.seq), "--json", env=env)
    doc = json.loads(then.wait_for('"jobs"'))
    assert then.wait() == 0 and doc["jobs"][0]["status"] == "running"
    now = BakerProcess("jobs", "--as-of", "2999-01-01T00:00:00", "--json", env=env)
    assert json.loads(now.wait_for('"jobs"'))["jobs"][0]["status"] == "completed"
    assert now.wait() == 0
    early = BakerProcess("jobs", "--as-of", "2000-01-01T00:00:00", "--json", env=env)
    assert json.loads(early.wait_for('"jobs"'))["jobs"] == []
    assert early.wait() == 0
    bad = BakerProcess("jobs", "--as-of", "yesterday", env=env)
    assert bad.wait() == 2
