"""Delayed-jobs bench (DESIGN §11): 1,000 jobs delayed to the same second, and how late each
was received. Target: p99 ≤ 1 s.

One private server, the Brain in this process (its timer queues the jobs), two `baker worker`
processes with room for every job at once (`BAKER_WORKER_CONCURRENCY=500`), so what is
measured is the timer and the queue, not a worker pool's depth. All jobs are dispatched with
the same `runAt`, far enough ahead that every one is recorded `scheduled` before it; the
lateness of a job is its `JobReceived` time (as stored) minus that `runAt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import provision
from bench.common import machine, markdown_table, median, private_nats_server, progress, save
from bench.pipeline import BIN, _stop_all
from domain.events import JobReceived
from domain.specs import parse_job_spec
from services.bootstrap.parts import build_brain
from services.executor import CommandExecutor, Outcome
from services.tuning import tune_gc

JOBS = 1_000
LEAD = 10.0  # seconds from the first dispatch to the common runAt


class Receipts:
    """JobReceived times, by job, as the Brain records them."""

    def __init__(self, expected: int) -> None:
        self.at: dict[str, datetime] = {}
        self.expected = expected
        self.all = asyncio.Event()

    def __call__(self, job_id: str, outcome: Outcome) -> None:
        for stored in outcome.appended:
            if isinstance(stored.envelope.data, JobReceived) and job_id not in self.at:
                self.at[job_id] = stored.envelope.occurred_at
        if len(self.at) >= self.expected:
            self.all.set()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def one_round(jobs: int) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        server = stack.enter_context(private_nats_server())
        nc = await Client.connect(Options(url=server.url, name="bench-delayed"))
        stack.push_async_callback(nc.close)
        await provision(nc)
        store = JetStreamEventStore(nc)
        stack.push_async_callback(store.close)
        brain = build_brain(nc, CommandExecutor(store))
        receipts = Receipts(jobs)
        brain.add_observer(receipts)
        stop = asyncio.Event()
        running = asyncio.create_task(brain.run(stop))

        async def stop_brain() -> None:
            stop.set()
            await running

        stack.push_async_callback(stop_brain)
        env = {**os.environ, "BAKER_NATS_URL": server.url, "BAKER_LOG_LEVEL": "WARNING",
               "BAKER_WORKER_CONCURRENCY": "500"}  # fmt: skip
        workers = [
            subprocess.Popen(  # noqa: S603, ASYNC220
                [str(BIN / "baker"), "worker"], env=env, stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(2)
        ]  # fmt: skip
        stack.callback(_stop_all, workers, 30)
        run_at = datetime.now(UTC) + timedelta(seconds=LEAD)
        spec = parse_job_spec({
            "type": "command", "payload": {"command": "echo on time"},
            "runAt": run_at.isoformat(),
        })  # fmt: skip
        sem = asyncio.Semaphore(64)

        async def dispatch() -> None:
            async with sem:
                await brain.dispatcher.dispatch(spec)

        await asyncio.gather(*(dispatch() for _ in range(jobs)))
        ahead = (run_at - datetime.now(UTC)).total_seconds()
        progress(f"{jobs} jobs scheduled {ahead:.1f} s before their runAt")
        await asyncio.wait_for(receipts.all.wait(), LEAD + 120)
        late = [(at - run_at).total_seconds() for at in receipts.at.values()]
    return {"jobs": jobs, "scheduled_ahead_s": ahead, "p50_s": _percentile(late, 0.5),
            "p99_s": _percentile(late, 0.99), "max_s": max(late), "min_s": min(late)}  # fmt: skip


async def run(rounds: int = 5, jobs: int = JOBS) -> dict[str, Any]:
    tune_gc()
    samples = []
    for r in range(rounds):
        progress(f"round {r + 1}/{rounds}")
        samples.append(await one_round(jobs))
    doc = {"machine": machine(), "samples": samples,
           "median": {k: median([s[k] for s in samples])
                      for k in ("p50_s", "p99_s", "max_s", "min_s")}}  # fmt: skip
    save("delayed", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    m = doc["median"]
    jobs = doc["samples"][0]["jobs"]
    ms = {k: f"{m[k] * 1000:.0f} ms" for k in ("p50_s", "p99_s", "max_s")}
    rows = [(f"{jobs} jobs, one runAt", ms["p50_s"], ms["p99_s"], ms["max_s"], "p99 ≤ 1,000 ms")]
    return markdown_table(rows, ("received late by", "p50", "p99", "max", "target"))
