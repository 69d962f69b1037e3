"""Standby projectors as real `baker projector` processes on a real nats-server, over a SQLite
file and over a real PostgreSQL: of two, one
applies and one stands by; the active one SIGKILLed while it applies a stream of events, the
standby takes over from the checkpoint, and the read model ends with every event exactly once
(`baker verify` passes, the counts are those of the log). The takeover time is printed as a
figure (`takeover_seconds`), never asserted."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from projections import queries
from services.heartbeat import HEALTH_SUBJECT
from tests.e2e.procs import BakerProcess, started
from tests.integration.test_projector_daemon import run_jobs
from tests.polling import until
from tests.support.postgres import postgres_url
from tests.support.read_models import ReadModel, read_model

__all__ = ["postgres_url", "read_model"]

JOBS = 2000  # 8,000 events, appended while the projectors run


@pytest.fixture
async def beats(raw_nc: NATS) -> AsyncIterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def on(msg: Msg) -> None:
        seen.append(json.loads(msg.data))

    sub = await raw_nc.subscribe(HEALTH_SUBJECT, cb=on)
    yield seen
    await sub.unsubscribe()


def projector(
    server: NatsServerProcess, db: ReadModel, data: Path
) -> AbstractContextManager[BakerProcess]:
    env = {
        "BAKER_NATS_URL": server.url, "BAKER_DB": db.location, "BAKER_DATA_DIR": str(data),
        "BAKER_HEARTBEAT_SECONDS": "0.2", "BAKER_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    return started("projector", env=env)


def instance_of(proc: BakerProcess) -> str:
    found = re.search(r"baker projector (projector-\w+)", proc.wait_for("baker projector"))
    assert found is not None
    return found.group(1)


def state_of(beats: list[dict[str, Any]], instance: str) -> str | None:
    mine = [b for b in beats if b["service"] == "projector" and b["instance"] == instance]
    return str(mine[-1]["details"]["state"]) if mine else None


async def test_the_standby_takes_over_from_a_killed_active_projector_exactly_once(
    nats_server: NatsServerProcess,
    provisioned: Client,
    beats: list[dict[str, Any]],
    read_model: ReadModel,
    tmp_path: Path,
) -> None:
    db, checkpoint = read_model, read_model.checkpoint
    store = JetStreamEventStore(provisioned)
    with ExitStack() as running:
        first = running.enter_context(projector(nats_server, db, tmp_path / "a"))
        a = instance_of(first)
        await until(lambda: state_of(beats, a) == "active", "the first projector is active")
        second = running.enter_context(projector(nats_server, db, tmp_path / "b"))
        b = instance_of(second)
        await until(lambda: state_of(beats, b) == "standby", "the second one stands by")
        appending = asyncio.create_task(run_jobs(store, "job-s", JOBS))
        await until(lambda: checkpoint() >= JOBS, "the active projector applies", timeout=60)
        assert not appending.done()  # killed while events still arrive and are applied
        first.stop(signal.SIGKILL)
        killed_at, at_kill = time.monotonic(), checkpoint()
        await until(lambda: checkpoint() > at_kill, "the standby applies", timeout=60)
        takeover = time.monotonic() - killed_at
        print(f"takeover_seconds={takeover:.2f} (checkpoint {at_kill} at the kill)")
        head = await appending
        await until(lambda: checkpoint() == head, "the standby caught up", timeout=60)
        assert state_of(beats, b) == "active"
        assert second.stop(signal.SIGTERM) == 0
    check = BakerProcess("verify", env={"BAKER_NATS_URL": nats_server.url, "BAKER_DB": db.location})
    await asyncio.to_thread(check.wait_for, "read model matches the event log", 60)
    assert await asyncio.to_thread(check.wait, 60) == 0
    rm = db.store()
    async with rm.snapshot() as conn:
        stats = await queries.job_stats(conn)
        assert await queries.dead_letters(conn) == []
        async with conn.execute("SELECT count(*) FROM job_events") as cur:
            (events,) = await cur.fetchone() or (0,)
    await rm.close()
    assert stats["counts"]["command"] == {"completed": JOBS}
    assert events == head  # every event of the log once (every one here is a job's)
    await store.close()
