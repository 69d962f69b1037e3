"""`baker audit export` / `verify` through the CLI on a real nats-server: a log written by the
executor (one command at a time, pipelined, and by racing writers, after an event stored before
the hash chain) exports and verifies; each tampering of the file is named at the right event
with what happened; a forged event published on the stream itself is found by `--live`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import orjson
from nats.aio.client import Client as NATS

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from domain.commands import DispatchJob, RecordStatus
from domain.events import Envelope, JobDispatched, document_hash, encode_event
from domain.specs import parse_job_spec
from services.executor import CommandExecutor
from tests.e2e.procs import BAKER

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
JOBS = [f"job-au{i}" for i in range(4)]


def baker(server: NatsServerProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {"BAKER_NATS_URL": server.url, "BAKER_LOG_LEVEL": "WARNING"}
    return subprocess.run(  # our own CLI, no shell
        [BAKER, *args], capture_output=True, timeout=120, check=False, env={**os.environ, **env}
    )


async def cli(server: NatsServerProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(baker, server, *args)


async def write_log(provisioned: Client, raw_nc: NATS, url: str) -> None:
    old = JobDispatched(job_type="command", payload={"command": "echo old"})
    env = Envelope("e-before-hashing", "job", "job-old", 1, datetime.now(UTC), old)
    await raw_nc.jetstream().publish("baker.events.job.job-old", encode_event(env))
    store = JetStreamEventStore(provisioned)
    executor = CommandExecutor(store)
    await executor.execute("job", "job-old", RecordStatus(status="running", attempt=1))
    for job in JOBS:
        await executor.execute("job", job, DispatchJob(spec=SPEC), new=True)
    for step in range(3):  # the pipelined path (the Brain's ingest)
        command = RecordStatus(status="running", attempt=1, progress=f"step {step}")
        outcomes = await executor.execute_each(
            [("job", job, command, None, f"cause-{job}-{step}") for job in JOBS]
        )
        assert all(not isinstance(o, Exception) and o.changed for o in outcomes)
    other = await Client.connect(url)  # a second writer racing on one aggregate
    try:
        rival = CommandExecutor(JetStreamEventStore(other))
        await rival.current("job", JOBS[0])
        await asyncio.gather(
            *[
                (executor if i % 2 else rival).execute(
                    "job", JOBS[0], RecordStatus(status="running", attempt=1, progress=f"r{i}")
                )
                for i in range(6)
            ]
        )
    finally:
        await other.close()


def first_error(result: subprocess.CompletedProcess[bytes]) -> str:
    """The error line (rich wraps it at the console's width)."""
    return " ".join(result.stderr.decode().split())


async def test_export_verify_and_each_tampering_named(
    nats_server: NatsServerProcess, provisioned: Client, raw_nc: NATS, tmp_path: Path
) -> None:
    await write_log(provisioned, raw_nc, nats_server.url)
    exported = await cli(nats_server, "audit", "export", "--all")
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert len(lines) == 2 + 4 + 12 + 6
    assert b"exported 24 events" in exported.stderr  # progress and totals on stderr only
    good = tmp_path / "log.jsonl"
    good.write_bytes(exported.stdout)

    ok = await cli(nats_server, "audit", "verify", str(good), "--json")
    assert ok.returncode == 0, ok.stderr
    verdict = json.loads(ok.stdout)
    assert verdict["ok"] and verdict["events"] == 24 and verdict["unhashed"] == 1
    assert verdict["firstBreak"] is None
    table = await cli(nats_server, "audit", "verify", str(good))
    assert table.returncode == 0 and b"every chain holds" in table.stdout
    live = await cli(nats_server, "audit", "verify", "--live")
    assert live.returncode == 0, live.stderr

    one = await cli(nats_server, "audit", "export", JOBS[1])
    docs = [orjson.loads(line) for line in one.stdout.splitlines()]
    assert {d["aggregateId"] for d in docs} == {JOBS[1]} and len(docs) == 4

    docs = [orjson.loads(line) for line in lines]
    racing = [n for n, d in enumerate(docs) if d["aggregateId"] == JOBS[0]]

    async def verify(changed: list[bytes]) -> str:
        path = tmp_path / "tampered.jsonl"
        path.write_bytes(b"\n".join(changed) + b"\n")
        result = await cli(nats_server, "audit", "verify", str(path))
        assert result.returncode == 1, result.stdout
        return first_error(result)

    changed = list(lines)  # a field changed
    doc = dict(docs[racing[3]], data={**docs[racing[3]]["data"], "progress": "edited"})
    changed[racing[3]] = orjson.dumps(doc)
    error = await verify(changed)
    assert f"line {racing[3] + 1}: event {doc['eventId']}" in error and " changed: " in error

    changed = list(lines)  # a line deleted: named at the event after it, one line up
    del changed[racing[2]]
    error = await verify(changed)
    assert f"line {racing[3]}: event {docs[racing[3]]['eventId']}" in error
    assert " missing: " in error

    changed = list(lines)  # two lines swapped
    changed[racing[2]], changed[racing[4]] = changed[racing[4]], changed[racing[2]]
    error = await verify(changed)
    assert f"line {racing[2] + 1}: event {docs[racing[4]]['eventId']}" in error
    assert " reordered: " in error

    changed = list(lines)  # a forged line: its hash recomputed, its prevHash wrong
    forged = dict(docs[racing[2]], eventId="forged", prevHash="f" * 64)
    forged["hash"] = document_hash(forged)
    changed.insert(racing[3], orjson.dumps(forged))
    error = await verify(changed)
    assert f"line {racing[3] + 1}: event forged" in error and " inserted: " in error


async def test_verify_live_names_an_event_forged_on_the_stream(
    nats_server: NatsServerProcess, provisioned: Client, raw_nc: NATS
) -> None:
    await write_log(provisioned, raw_nc, nats_server.url)
    history = await JetStreamEventStore(provisioned).load("job", JOBS[2])
    last = orjson.loads(history.events[-1].raw)
    forged = dict(last, eventId="forged-on-stream", version=last["version"] + 1, prevHash="0" * 64)
    forged["hash"] = document_hash(forged)
    ack = await raw_nc.jetstream().publish(f"baker.events.job.{JOBS[2]}", orjson.dumps(forged))
    result = await cli(nats_server, "audit", "verify", "--live", "--json")
    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert verdict["firstBreak"]["at"] == ack.seq and verdict["firstBreak"]["kind"] == "inserted"
    assert f"seq {ack.seq}: event forged-on-stream" in first_error(result)


async def test_bad_arguments_are_named(nats_server: NatsServerProcess, tmp_path: Path) -> None:
    neither = await cli(nats_server, "audit", "export")
    assert neither.returncode == 2 and b"JOB_IDs or --all" in neither.stderr
    missing = await cli(nats_server, "audit", "verify", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and b"cannot read" in missing.stderr
