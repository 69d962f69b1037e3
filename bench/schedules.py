"""Schedules bench (issue 16): 100 schedules firing every second for a minute.

A Brain in this process (with its scheduler) and 2 `baker worker` processes on a private
nats-server; 100 schedules of `everySeconds: 1`, each dispatching an `echo` command job. After
the run, the log is read back: every slot between each schedule's first and last fired one
must have fired exactly once, with no slot folded into a later one. Reported: slots fired,
missed (folded), doubled (fired twice), and the lateness of `ScheduleFired` against its slot
(p50, p99), and the jobs the slots dispatched that completed.

Target: 0 missed, 0 doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from adapters.eventstore import StoredEvent
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import provision
from bench.common import machine, markdown_table, private_nats_server, progress, save
from bench.pipeline import _stop_all, percentile
from domain.events import JobCompleted, ScheduleFired
from services.bootstrap.parts import build_brain
from services.executor import CommandExecutor

SCHEDULES = 100
SECONDS = 60
BIN = Path(sys.executable).parent
JOB = {"type": "command", "payload": {"command": "echo tick"}}


async def _measure(seconds: int) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        server = stack.enter_context(private_nats_server())
        nc = await Client.connect(Options(url=server.url, name="bench-schedules"))
        stack.push_async_callback(nc.close)
        await provision(nc)
        store = JetStreamEventStore(nc)
        brain = build_brain(nc, CommandExecutor(store))
        assert brain.scheduler is not None
        env = {**os.environ, "BAKER_NATS_URL": server.url, "BAKER_LOG_LEVEL": "WARNING"}
        workers = [
            subprocess.Popen(  # noqa: S603, ASYNC220
                [str(BIN / "baker"), "worker"], env=env, stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(2)
        ]  # fmt: skip
        stack.callback(_stop_all, workers, 30)
        for i in range(SCHEDULES):
            await brain.scheduler.create(f"s{i:03d}", {"every_seconds": 1, "job": JOB})
        stop = asyncio.Event()
        running = asyncio.create_task(brain.run(stop))
        progress(f"{SCHEDULES} schedules every second for {seconds} s")
        await asyncio.sleep(seconds)  # the bench's measured period, not a synchronisation
        stop.set()
        await running
        return await _read_back(store)


async def _read_back(store: JetStreamEventStore) -> dict[str, Any]:
    slots: dict[str, list[Any]] = {}
    late: list[float] = []
    missed = 0
    completed = 0
    async for item in store.read_all(1):
        if not isinstance(item, StoredEvent):
            continue
        data = item.envelope.data
        if isinstance(data, ScheduleFired):
            slots.setdefault(item.envelope.aggregate_id, []).append(data.slot)
            missed += data.missed
            late.append((item.envelope.occurred_at - data.slot).total_seconds())
        elif isinstance(data, JobCompleted):
            completed += 1
    fired = sum(len(s) for s in slots.values())
    doubled = sum(len(s) - len(set(s)) for s in slots.values())
    gaps = 0
    for fired_slots in slots.values():
        ordered = sorted(set(fired_slots))
        gaps += sum(int((b - a) / timedelta(seconds=1)) - 1 for a, b in pairwise(ordered))
    return {
        "schedules": len(slots), "slots_fired": fired, "missed": missed + gaps,
        "doubled": doubled, "late_p50_ms": percentile(late, 0.5) * 1000,
        "late_p99_ms": percentile(late, 0.99) * 1000, "jobs_completed": completed,
    }  # fmt: skip


async def run(rounds: int = 1) -> dict[str, Any]:
    doc = {"machine": machine(), "seconds": SECONDS, **await _measure(SECONDS)}
    save("schedules", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    rows = [
        ("schedules x seconds", f"{doc['schedules']} x {doc['seconds']}", ""),
        ("slots fired", f"{doc['slots_fired']:,}", ""),
        ("missed slots", str(doc["missed"]), "0"),
        ("doubled slots", str(doc["doubled"]), "0"),
        ("ScheduleFired after its slot, p50 / p99",
         f"{doc['late_p50_ms']:.0f} / {doc['late_p99_ms']:.0f} ms", ""),
        ("their jobs completed (by the end of the run)", f"{doc['jobs_completed']:,}", ""),
    ]  # fmt: skip
    return markdown_table(rows, ("measure", "value", "target"))
