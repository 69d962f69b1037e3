"""A projector that cannot go on stops loudly and at once, on a real nats-server: a sequence
gap, a read model ahead of the stream, in `baker projector`, in-process, and inside the Brain.

The gap is real: `BAKER_EVENTS` is created with a per-subject limit of one message, so the
server itself drops an event when the next one of its job arrives; then the stream is put
back to exactly the configuration baker provisions (deny delete/purge), gap and all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.eventstore import SequenceGap
from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology, events_stream, provision
from adapters.sqlite import ensure_schema
from domain.commands import DispatchJob, RecordStatus
from domain.specs import parse_job_spec
from services.bootstrap.brain_process import run_own_projector
from services.bootstrap.parts import build_projector
from services.executor import CommandExecutor
from services.heartbeat import HEALTH_SUBJECT
from services.projector import Projector, ProjectorFailed, ProjectorSettings, ReadModelAhead
from tests.e2e.procs import BakerProcess
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


async def gapped_events(nc: Client) -> int:
    """`BAKER_EVENTS` holding seqs 1 and 3 (2 is gone); returns the head (3)."""
    canonical = events_stream(Topology())
    await jsapi.add_stream(nc, {**canonical, "max_msgs_per_subject": 1})
    store = JetStreamEventStore(nc)
    executor = CommandExecutor(store)
    await executor.execute("job", "job-a", DispatchJob(spec=SPEC), new=True)  # seq 1
    await executor.execute("job", "job-b", DispatchJob(spec=SPEC), new=True)  # seq 2 ...
    # ... dropped by the server when job-b's next event (seq 3) is stored.
    await executor.execute(
        "job", "job-b", RecordStatus(status="received", attempt=1, worker_id="w")
    )
    await store.close()
    await jsapi.api(nc, f"STREAM.UPDATE.{canonical['name']}", canonical)
    await provision(nc)  # accepted as it is: the configuration is baker's own
    state = (await jsapi.stream_info(nc, canonical["name"]))["state"]
    assert (state["last_seq"], state["messages"], state["num_deleted"]) == (3, 2, 1)
    return int(state["last_seq"])


@pytest.fixture
async def gap(nc: Client) -> int:
    return await gapped_events(nc)


@pytest.fixture
async def beats(raw_nc: NATS) -> AsyncIterator[list[dict[str, Any]]]:
    """Every heartbeat seen on the server while the test runs (heard by plain nats-py)."""
    seen: list[dict[str, Any]] = []

    async def on(msg: Msg) -> None:
        seen.append(json.loads(msg.data))

    sub = await raw_nc.subscribe(HEALTH_SUBJECT, cb=on)
    yield seen
    await sub.unsubscribe()


def env_for(url: str, db: Path, **extra: str) -> dict[str, str]:
    return {"BAKER_NATS_URL": url, "BAKER_DB": str(db), "BAKER_LOG_LEVEL": "WARNING", **extra}


@contextmanager
def killed_after(proc: BakerProcess) -> Iterator[BakerProcess]:
    """Never leave the child behind, even when the test fails while it still runs."""
    try:
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.stop(signal.SIGKILL)


async def test_baker_projector_exits_3_naming_the_gap(
    nats_server: NatsServerProcess,
    raw_nc: NATS,
    gap: int,
    beats: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    db = tmp_path / "readmodel.db"
    env = env_for(nats_server.url, db, BAKER_HEARTBEAT_SECONDS="0.2")
    with killed_after(BakerProcess("projector", env=env)) as proc:
        code = await asyncio.to_thread(proc.wait, 60)
    output = " ".join(" ".join(proc.lines).split())  # rich wraps long error lines
    assert code == 3, output
    assert "sequence gap in the event log: expected 2, got 3" in output
    assert "run `baker rebuild` after checking the stream" in output
    instance = re.search(r"baker projector (projector-\w+)", output)
    assert instance is not None
    # Its last beat says it is stopping (the monitor marks it down at once).
    await until(
        lambda: (
            [b["status"] for b in beats if b["instance"] == instance.group(1)][-1:] == ["stopping"]
        ),
        "the projector's stopping heartbeat",
    )
    with sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True) as conn:
        (applied,) = conn.execute("SELECT min(last_seq) FROM checkpoints").fetchone()
    assert applied < gap  # nothing past the gap was applied


async def test_run_raises_the_gap_and_ends_its_heartbeats(
    nc: Client, raw_nc: NATS, gap: int, beats: list[dict[str, Any]], tmp_path: Path
) -> None:
    store = JetStreamEventStore(nc)
    projector = build_projector(
        nc, store, tmp_path / "rm.db", ProjectorSettings(heartbeat_every=0.05)
    )
    with pytest.raises(SequenceGap, match="expected 2, got 3"):
        await asyncio.wait_for(projector.run(asyncio.Event()), 30)
    await until(
        lambda: (
            [b["status"] for b in beats if b["instance"] == projector.instance][-1:] == ["stopping"]
        ),
        "the projector's stopping heartbeat",
    )
    count = len(beats)
    mine = [b["status"] for b in beats if b["instance"] == projector.instance]
    assert mine[0] == "up" and mine[-1] == "stopping" and mine.count("stopping") == 1
    assert projector.writer is None  # closed
    # No heartbeat task is left behind saying "up": a round trip later nothing new came.
    await nc.flush()
    await raw_nc.flush()
    assert len(beats) == count
    await store.close()


async def test_a_read_model_ahead_of_the_stream_stops_baker_projector(
    nats_server: NatsServerProcess, provisioned: Client, tmp_path: Path
) -> None:
    db = tmp_path / "readmodel.db"
    other = NatsServerProcess(tmp_path / "other-nats")
    other.start()
    try:  # a read model built from another event log, five events long
        conn = await Client.connect(Options(url=other.url, name="baker-test-other"))
        await provision(conn)
        store = JetStreamEventStore(conn)
        for i in range(5):
            await CommandExecutor(store).execute(
                "job", f"job-o{i}", DispatchJob(spec=SPEC), new=True
            )
        projector = Projector(store, db)
        await projector.open()
        await projector.apply([i async for i in store.read_all(1, include_bad=True)])
        await projector.close()
        await store.close()
        await conn.close()
    finally:
        other.stop()
    here = JetStreamEventStore(provisioned)
    await CommandExecutor(here).execute("job", "job-h", DispatchJob(spec=SPEC), new=True)  # head 1
    with pytest.raises(ReadModelAhead, match="at seq 5 but the event log ends at seq 1"):
        await Projector(here, db).open()
    await here.close()
    with killed_after(BakerProcess("projector", env=env_for(nats_server.url, db))) as proc:
        code = await asyncio.to_thread(proc.wait, 60)
    output = " ".join(" ".join(proc.lines).split())
    assert code == 3, output
    assert "the read model is at seq 5 but the event log ends at seq 1" in output


async def test_the_brains_projector_failing_is_logged_and_stops_the_brain(
    nc: Client, gap: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = JetStreamEventStore(nc)
    projector = Projector(store, tmp_path / "rm.db")
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR), pytest.raises(ProjectorFailed, match="sequence gap"):
        await asyncio.wait_for(run_own_projector(projector, stop), 30)
    assert stop.is_set()  # every other loop of the Brain process now winds down
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical and "projector failed, stopping the Brain" in critical[0].getMessage()
    assert "expected 2, got 3" in critical[0].getMessage()
    await store.close()


async def test_baker_brain_exits_non_zero_and_says_why_when_its_projector_fails(
    nats_server: NatsServerProcess, gap: int, tmp_path: Path
) -> None:
    env = env_for(nats_server.url, tmp_path / "readmodel.db", BAKER_API_PORT="0")
    with killed_after(BakerProcess("brain", env=env)) as proc:
        code = await asyncio.to_thread(proc.wait, 60)
    output = " ".join(" ".join(proc.lines).split())
    assert code != 0, output
    assert "sequence gap in the event log: expected 2, got 3" in output


async def test_a_database_error_ends_run_and_baker_projector_exits_1(
    nats_server: NatsServerProcess,
    provisioned: Client,
    beats: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    store = JetStreamEventStore(provisioned)
    await CommandExecutor(store).execute("job", "job-s", DispatchJob(spec=SPEC), new=True)
    db = tmp_path / "readmodel.db"
    projector = build_projector(provisioned, store, db, ProjectorSettings(heartbeat_every=0.05))
    await projector.open()
    with sqlite3.connect(db.resolve()) as conn:  # the table is gone from under it
        conn.execute("DROP TABLE job_events")
    with pytest.raises(sqlite3.OperationalError, match="no such table: job_events"):
        await asyncio.wait_for(projector.run(asyncio.Event()), 30)
    # Our own connection's messages may come after a flush's PONG: wait for the last beat.
    mine = projector.instance
    await until(
        lambda: [b["status"] for b in beats if b["instance"] == mine][-1:] == ["stopping"],
        "the projector's stopping heartbeat",
    )
    await store.close()
    # A database that refuses writes once the projector runs: exit 1, saying why.
    with sqlite3.connect(db.resolve()) as conn:
        ensure_schema(conn)  # the table back, and a trigger that refuses every row
        conn.execute(
            "CREATE TRIGGER no_events BEFORE INSERT ON job_events "
            "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END"
        )
    with killed_after(BakerProcess("projector", env=env_for(nats_server.url, db))) as proc:
        code = await asyncio.to_thread(proc.wait, 60)
    output = " ".join(" ".join(proc.lines).split())
    assert code == 1, output
    assert "projector stopped after seq 0: IntegrityError: the disk says no" in output
    # One it cannot even open as a read model: exit 1 as well, not a hang.
    with sqlite3.connect(db.resolve()) as conn:
        conn.execute("DROP TABLE job_events")
        conn.execute("CREATE VIEW job_events AS SELECT 1 AS seq")
    with killed_after(BakerProcess("projector", env=env_for(nats_server.url, db))) as proc:
        code = await asyncio.to_thread(proc.wait, 60)
    output = " ".join(" ".join(proc.lines).split())
    assert code == 1, output
    assert "cannot open the read model" in output and "views may not be indexed" in output
