"""The standalone projector's heartbeat carries its lag (stream head - checkpoint), on a real
nats-server: the known backlog when it starts behind, 0 once it has caught up."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from domain.commands import DispatchJob, RecordStatus
from domain.specs import parse_job_spec
from services.bootstrap.parts import build_projector
from services.executor import CommandExecutor
from services.heartbeat import HEALTH_SUBJECT
from services.projector import Projector, ProjectorSettings
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


async def test_the_heartbeat_reports_the_backlog_then_zero(
    provisioned: Client, raw_nc: NATS, tmp_path: Path
) -> None:
    store = JetStreamEventStore(provisioned)
    executor = CommandExecutor(store)
    for i in range(12):
        await executor.execute("job", f"job-l{i}", DispatchJob(spec=SPEC), new=True)
    for i in range(12):
        await executor.execute("job", f"job-l{i}", RecordStatus(status="received", attempt=1))
    head = await store.head_seq()
    assert head == 24
    db = tmp_path / "readmodel.db"
    first = Projector(store, db)  # applies the first 10 events, then stops: 14 behind
    await first.open()
    await first.apply([i async for i in store.read_all(1, until_seq=10, include_bad=True)])
    await first.close()

    beats: list[dict[str, Any]] = []
    caught_up = asyncio.Event()

    async def on(msg: Msg) -> None:
        beat = json.loads(msg.data)
        beats.append(beat)
        if beat["details"]["applied"] == head:
            caught_up.set()

    sub = await raw_nc.subscribe(HEALTH_SUBJECT, cb=on)
    projector = build_projector(provisioned, store, db, ProjectorSettings(heartbeat_every=0.05))
    await projector.open()
    assert (projector.applied, await projector.lag()) == (10, head - 10)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    await asyncio.wait_for(caught_up.wait(), 30)
    stop.set()
    await task
    # Our own connection's messages may come after a flush's PONG: wait for the last beat.
    await until(lambda: beats and beats[-1]["status"] == "stopping", "the stopping beat")
    await sub.unsubscribe()

    start, done = beats[0]["details"], next(b for b in beats if b["details"]["applied"] == head)
    assert (start["applied"], start["head"], start["lag"]) == (10, head, head - 10)
    assert (done["details"]["head"], done["details"]["lag"]) == (head, 0)
    lags = [b["details"]["lag"] for b in beats]
    assert lags == sorted(lags, reverse=True)  # nothing was appended meanwhile
    assert beats[-1]["status"] == "stopping" and beats[-1]["details"]["lag"] == 0
    assert await projector.lag() == 0
    await store.close()
