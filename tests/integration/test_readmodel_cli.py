"""`baker rebuild [--projection NAME] [--json]` and `baker jobs --as-of` through the CLI on a real
nats-server; superseded generations are removed while a reader keeps its open copy."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from adapters.sqlite import current_target, open_db, prune, swap_in
from domain.commands import DispatchJob, RecordStatus
from domain.events import format_time
from domain.specs import parse_job_spec
from projections import queries
from services.executor import CommandExecutor
from services.projector import Projector
from tests.e2e.procs import BAKER

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


def baker(
    server: NatsServerProcess, db: Path | str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`baker ARGS` against `server` with the read model `db` (a SQLite file or a URL)."""
    env = {"BAKER_NATS_URL": server.url, "BAKER_DB": str(db), "BAKER_LOG_LEVEL": "WARNING"}
    return subprocess.run(  # our own CLI, no shell
        [BAKER, *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


async def cli(
    server: NatsServerProcess, db: Path | str, *args: str
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(baker, server, db, *args)


def generation_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("readmodel-*.db"))


async def project(store: JetStreamEventStore, db: Path) -> None:
    projector = Projector(store, db)
    await projector.open()
    await projector.apply([i async for i in store.read_all(1, include_bad=True)])
    await projector.close()


async def test_rebuild_and_rebuild_one_projection_through_the_cli(
    nats_server: NatsServerProcess, provisioned: Client, tmp_path: Path
) -> None:
    store = JetStreamEventStore(provisioned)
    executor = CommandExecutor(store)
    for i in range(20):
        await executor.execute("job", f"job-c{i}", DispatchJob(spec=SPEC), new=True)
        await executor.execute("job", f"job-c{i}", RecordStatus(status="running", attempt=1))
    head = await store.head_seq()
    db = tmp_path / "readmodel.db"
    await project(store, db)
    gen1 = current_target(db)
    reader = await open_db(db, readonly=True)  # a reader on generation 1 all along
    before = await queries.list_jobs(reader, queries.JobFilter(limit=100))

    full = await cli(nats_server, db, "rebuild", "--json")
    assert full.returncode == 0, full.stderr
    summary = json.loads(full.stdout)  # stdout is the summary alone; progress is on stderr
    assert summary == {
        "generation": "readmodel-2.db", "previous": "readmodel-1.db", "projection": None,
        "lastSeq": head, "seconds": summary["seconds"], "removed": [],
    }  # fmt: skip
    assert "rebuild" in full.stderr and current_target(db).name == "readmodel-2.db"

    # Drift in two projections of generation 2; rebuilding `jobs` alone repairs only jobs.
    with sqlite3.connect(current_target(db)) as conn:
        conn.execute("UPDATE jobs SET status = 'failed' WHERE id = 'job-c3'")
        conn.execute("INSERT INTO extensions (id, status) VALUES ('ext-bogus', 'online')")
    jobs_only = await cli(nats_server, db, "rebuild", "--projection", "jobs", "--json")
    assert jobs_only.returncode == 0, jobs_only.stderr
    summary = json.loads(jobs_only.stdout)
    assert (summary["generation"], summary["previous"], summary["projection"]) == (
        "readmodel-3.db", "readmodel-2.db", "jobs",
    )  # fmt: skip
    assert summary["lastSeq"] == head and summary["removed"] == ["readmodel-1.db"]
    assert not gen1.exists() and (tmp_path / "readmodel-2.db").exists()  # the previous stays
    with sqlite3.connect(f"file:{current_target(db)}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT status FROM jobs WHERE id = 'job-c3'").fetchone() == (
            "running",
        )
        assert conn.execute("SELECT count(*) FROM extensions").fetchone() == (1,)  # copied
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (20,)

    # The reader of generation 1 keeps reading its open copy although the file is gone.
    assert await queries.list_jobs(reader, queries.JobFilter(limit=100)) == before
    assert len(before.jobs) == 20 and {j["status"] for j in before.jobs} == {"running"}
    await reader.close()

    plain = await cli(nats_server, db, "rebuild")
    assert plain.returncode == 0, plain.stderr
    assert f"rebuilt readmodel-4.db up to seq {head}" in plain.stdout
    assert "removed superseded readmodel-2.db" in plain.stdout
    with sqlite3.connect(f"file:{current_target(db)}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM extensions").fetchone() == (0,)
    assert generation_files(tmp_path) == ["readmodel-3.db", "readmodel-4.db"]
    check = await cli(nats_server, db, "verify", "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["ok"] is True

    bad = await cli(nats_server, db, "rebuild", "--projection", "nope")
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr
    await store.close()


async def test_jobs_as_of_a_mid_range_sequence_and_time_through_the_cli(
    nats_server: NatsServerProcess, provisioned: Client, tmp_path: Path
) -> None:
    store = JetStreamEventStore(provisioned)
    executor = CommandExecutor(store)
    await executor.execute("job", "job-a", DispatchJob(spec=SPEC), new=True)
    await executor.execute("job", "job-b", DispatchJob(spec=SPEC), new=True)
    running = await executor.execute("job", "job-a", RecordStatus(status="running", attempt=1))
    done = await executor.execute("job", "job-a", RecordStatus(status="completed", result={}))
    await executor.execute("job", "job-b", RecordStatus(status="running", attempt=1))
    await executor.execute("job", "job-c", DispatchJob(spec=SPEC), new=True)
    db = tmp_path / "readmodel.db"
    await project(store, db)

    async def as_of(value: str) -> dict[str, str]:
        got = await cli(nats_server, db, "jobs", "--as-of", value, "--json")
        assert got.returncode == 0, got.stderr
        return {j["id"]: j["status"] for j in json.loads(got.stdout)["jobs"]}

    assert await as_of(str(running.position.seq)) == {"job-a": "running", "job-b": "dispatched"}
    moment: datetime = done.appended[-1].envelope.occurred_at  # the completion, a mid-range time
    then = await as_of(format_time(moment))
    assert then == {"job-a": "completed", "job-b": "dispatched"}
    assert await as_of(str(await store.head_seq())) == {
        "job-a": "completed", "job-b": "running", "job-c": "dispatched",
    }  # fmt: skip
    await store.close()


def test_prune_keeps_the_previous_generation_and_never_touches_newer_ones(
    tmp_path: Path,
) -> None:
    for n in range(1, 6):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp_path}/readmodel-{n}.db{suffix}").write_bytes(b"x")
    (tmp_path / "readmodel-old.db").write_bytes(b"not a generation")
    db = tmp_path / "readmodel.db"
    swap_in(db, tmp_path / "readmodel-3.db")  # 4 and 5: rebuilds still writing
    assert prune(db) == [tmp_path / "readmodel-1.db"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in left if n.startswith("readmodel-1")] == []  # WAL files too
    assert generation_files(tmp_path) == [
        "readmodel-2.db", "readmodel-3.db", "readmodel-4.db", "readmodel-5.db", "readmodel-old.db",
    ]  # fmt: skip
    assert prune(db, keep=0) == [tmp_path / "readmodel-2.db"]
    assert prune(db, keep=0) == []
    plain = tmp_path / "plain" / "readmodel.db"
    plain.parent.mkdir()
    plain.write_bytes(b"a database from before generations")
    (plain.parent / "readmodel-1.db").write_bytes(b"x")
    assert prune(plain, keep=0) == []  # the link is not a generation: nothing is known superseded
