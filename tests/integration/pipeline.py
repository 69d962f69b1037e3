"""A running pipeline for integration tests: real nats-server, Brain, in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS

from adapters.eventstore import History
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology, provision
from services.bootstrap.parts import build_brain, build_worker
from services.brain.brain import Brain, BrainSettings
from services.executor import CommandExecutor
from services.worker.executors import ExecutorSettings
from services.worker.worker import Worker, WorkerSettings

TEST_COMMANDS = ("echo", "sleep", "cat", "ls", "date", "uptime")


@dataclass
class Pipeline:
    server: NatsServerProcess
    nc: Client  # the Brain's
    raw: NATS  # plain nats-py beside it, for tests to publish and look with
    store: JetStreamEventStore
    executor: CommandExecutor
    brain: Brain
    ack_wait: float
    url: str  # what the Brain dialled (on a cluster: a list, its node first)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    workers: list[tuple[Worker, asyncio.Event, asyncio.Task[Any]]] = field(default_factory=list)
    worker_conns: list[Client] = field(default_factory=list)

    def worker_settings(self, **overrides: Any) -> WorkerSettings:
        executors = overrides.pop("executors", ExecutorSettings(allowed_commands=TEST_COMMANDS))
        base: dict[str, Any] = {
            "executors": executors, "concurrency": 4, "ack_wait": self.ack_wait,
            "grace": 5.0, "heartbeat_every": 0.5,
        }  # fmt: skip
        return WorkerSettings(**{**base, **overrides})

    async def start_worker(self, url: str | None = None, **overrides: Any) -> Worker:
        """A worker on `url` (default: the Brain's)."""
        conn = await Client.connect(Options(url=url or self.url, name="test-worker"))
        worker = build_worker(conn, self.worker_settings(**overrides))
        self.worker_conns.append(conn)
        stop = asyncio.Event()

        async def run() -> None:
            try:
                await worker.run(stop)
            finally:
                await conn.close()

        self.workers.append((worker, stop, asyncio.create_task(run())))
        return worker

    async def stop_worker(self, worker: Worker) -> None:
        for w, stop, task in self.workers:
            if w is worker:
                stop.set()
                await task

    async def wait_job(
        self, job_id: str, until: Callable[[History], bool] | set[str], timeout: float = 20.0
    ) -> History:
        """Poll the job's history until the condition holds (fails with the history)."""
        check = until if callable(until) else (lambda h: h.state.status in until)
        deadline = time.monotonic() + timeout
        while True:
            history = await self.store.load("job", job_id)
            if check(history):
                return history
            if time.monotonic() > deadline:
                raise AssertionError(f"{job_id}: condition not met; events: {types(history)}")
            await asyncio.sleep(0.02)  # polling the condition, not waiting for time to pass


def types(history: History) -> list[str]:
    return [e.envelope.type for e in history.events]


@asynccontextmanager
async def running_pipeline(
    server: NatsServerProcess,
    *,
    topology: Topology | None = None,
    brain: BrainSettings | None = None,
    start_brain: bool = True,
    url: str | None = None,
) -> AsyncIterator[Pipeline]:
    """`url`: where the Brain and the oracle connect instead of `server` (a cluster's list)."""
    topo = topology or Topology(ack_wait=2.0)
    url = url or server.url
    nc = await Client.connect(Options(url=url, name="test-brain"))
    raw = await nats.connect(url.split(","), name="test-oracle")
    await provision(nc, topo)
    store = JetStreamEventStore(nc)
    executor = CommandExecutor(store)
    the_brain = build_brain(
        nc, executor, brain or BrainSettings(check_every=0.2, heartbeat_every=0.5)
    )
    pipe = Pipeline(server, nc, raw, store, executor, the_brain, topo.ack_wait, url)
    if start_brain:
        pipe.tasks.append(asyncio.create_task(the_brain.run(pipe.stop)))
    try:
        yield pipe
    finally:
        for _, stop, _ in pipe.workers:
            stop.set()
        pipe.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*pipe.tasks, *(t for _, _, t in pipe.workers)), 30
            )
        await store.close()
        await nc.close()
        await raw.close()
